// Key Vault in RBAC mode with purge protection, holding the secrets the code reads. The app reads them through
// Key Vault references (Key Vault Secrets User, see rbac.bicep). No secret value passes through this template or
// through azd parameters: scripts/postprovision.* writes each secret with `az keyvault secret set --file` (a
// random fail-closed value when none is given), and api.bicep only references them by name.

@description('Key Vault name.')
@maxLength(24)
param name string

@description('Location of the vault.')
param location string = resourceGroup().location

@description('Tags.')
param tags object = {}

module vault 'br/public:avm/res/key-vault/vault:0.13.3' = {
  name: 'keyvault-vault'
  params: {
    name: name
    location: location
    tags: tags
    sku: 'standard'
    enableRbacAuthorization: true
    enablePurgeProtection: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

output name string = vault.outputs.name
output resourceId string = vault.outputs.resourceId
output uri string = vault.outputs.uri
