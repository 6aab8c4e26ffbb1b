// Key Vault in RBAC mode with purge protection, holding the secrets the code reads. The app reads them through
// Key Vault references (Key Vault Secrets User, see rbac.bicep). Secret values come in as secure parameters and
// never leave this module: the outputs are versionless secret URIs, which are addresses, not values.

@description('Key Vault name.')
@maxLength(24)
param name string

@description('Location of the vault.')
param location string = resourceGroup().location

@description('Tags.')
param tags object = {}

@secure()
@description('Random seed (a fresh GUID per deployment) for the fail-closed value of a secret given empty.')
param unsetSeed string

@secure()
@description('GitHub webhook secret.')
param githubWebhookSecret string

@secure()
@description('GitHub App private key (PEM).')
param githubAppPrivateKey string

@secure()
@description('Teams outgoing-webhook security token.')
param teamsOutgoingWebhookToken string

@secure()
@description('Graph change-notification clientState.')
param graphClientState string

@secure()
@description('Lineage-marker signing key.')
param markerSigningKey string

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

resource kv 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vault.outputs.name
}

// An empty parameter still creates the secret, with a random value that fails closed (nobody knows it, so no
// signature can match it) and every Key Vault reference resolves. Replace it with `az keyvault secret set`
// (docs/deploy.md); azd's secretOrRandomPassword then keeps the replaced value on the next provision.
var unsetValue = 'unset-${unsetSeed}'

resource githubWebhookSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: kv
  name: 'github-webhook-secret'
  tags: tags
  properties: {
    value: empty(githubWebhookSecret) ? unsetValue : githubWebhookSecret
    contentType: 'text/plain'
  }
}

resource githubAppPrivateKeyResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: kv
  name: 'github-app-private-key'
  tags: tags
  properties: {
    value: empty(githubAppPrivateKey) ? unsetValue : githubAppPrivateKey
    contentType: 'application/x-pem-file'
  }
}

resource teamsTokenResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: kv
  name: 'teams-outgoing-webhook-token'
  tags: tags
  properties: {
    value: empty(teamsOutgoingWebhookToken) ? unsetValue : teamsOutgoingWebhookToken
    contentType: 'text/plain'
  }
}

resource graphClientStateResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: kv
  name: 'graph-client-state'
  tags: tags
  properties: {
    value: empty(graphClientState) ? unsetValue : graphClientState
    contentType: 'text/plain'
  }
}

resource markerKeyResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: kv
  name: 'reynolds-marker-key'
  tags: tags
  properties: {
    value: empty(markerSigningKey) ? unsetValue : markerSigningKey
    contentType: 'text/plain'
  }
}

output name string = vault.outputs.name
output resourceId string = vault.outputs.resourceId
output uri string = vault.outputs.uri
output githubWebhookSecretUri string = githubWebhookSecretResource.properties.secretUri
output githubAppPrivateKeyUri string = githubAppPrivateKeyResource.properties.secretUri
output teamsOutgoingWebhookTokenUri string = teamsTokenResource.properties.secretUri
output graphClientStateUri string = graphClientStateResource.properties.secretUri
output markerSigningKeyUri string = markerKeyResource.properties.secretUri
