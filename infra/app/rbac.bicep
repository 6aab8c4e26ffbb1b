// Every data-plane role the code needs, for the app's user-assigned identity and, when `userPrincipalId` is set,
// for the deploying user (so `func start` on a laptop reaches the same Azure resources with `az login`).
// tests/test_role_contract.py maps each Azure client the Python code creates to the roles below.
// Assignment names are guid(scope, principal, role): stable across re-provisioning.

@description('Host storage account (Durable task hub, deployment package).')
param storageAccountName string

@description('Service Bus namespace.')
param serviceBusNamespaceName string

@description('Cosmos DB account.')
param cosmosAccountName string

@description('Azure OpenAI account.')
param openAiAccountName string

@description('Key Vault holding the app secrets.')
param keyVaultName string

@description('Application Insights component (Entra-authenticated ingestion).')
param applicationInsightsName string

@description('Principal id of the app user-assigned identity.')
param appPrincipalId string

@description('Object id of the deploying user; empty = no user assignments.')
param userPrincipalId string = ''

@description('Kind of the deploying principal.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param userPrincipalType string = 'User'

// Built-in role definition ids (Azure RBAC). One line each: the contract test reads them.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39' // Azure Service Bus Data Sender
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0' // Azure Service Bus Data Receiver
  cognitiveServicesOpenAIUser: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd' // Cognitive Services OpenAI User
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets Officer
}

// Cosmos DB data plane is not Azure RBAC: a SQL role definition of the account.
var cosmosDataContributorRoleId = '00000000-0000-0000-0000-000000000002' // Cosmos DB Built-in Data Contributor

var appPrincipal = [
  {
    id: appPrincipalId
    type: 'ServicePrincipal'
  }
]
var userPrincipal = empty(userPrincipalId) ? [] : [
  {
    id: userPrincipalId
    type: userPrincipalType
  }
]
var principals = concat(appPrincipal, userPrincipal)

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusNamespaceName
}

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' existing = {
  name: cosmosAccountName
}

resource openAi 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: openAiAccountName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// ---- Storage: AzureWebJobsStorage (blobs, leases, deployment package) and the Durable task hub -------------
resource storageBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for p in principals: {
  name: guid(storage.id, p.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: p.id
    principalType: p.type
  }
}]

resource storageQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for p in principals: {
  name: guid(storage.id, p.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: p.id
    principalType: p.type
  }
}]

resource storageTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for p in principals: {
  name: guid(storage.id, p.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: p.id
    principalType: p.type
  }
}]

// ---- Service Bus: trigger on the events queue, publishing to the outbound queue ----------------------------
resource serviceBusDataSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for p in principals: {
  name: guid(serviceBus.id, p.id, roles.serviceBusDataSender)
  scope: serviceBus
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataSender)
    principalId: p.id
    principalType: p.type
  }
}]

resource serviceBusDataReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for p in principals: {
  name: guid(serviceBus.id, p.id, roles.serviceBusDataReceiver)
  scope: serviceBus
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)
    principalId: p.id
    principalType: p.type
  }
}]

// ---- Azure OpenAI: chat completions with an Entra token ----------------------------------------------------
resource openAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for p in principals: {
  name: guid(openAi.id, p.id, roles.cognitiveServicesOpenAIUser)
  scope: openAi
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAIUser)
    principalId: p.id
    principalType: p.type
  }
}]

// ---- Key Vault: Key Vault references in app settings, SecretClient for local runs --------------------------
resource keyVaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for p in principals: {
  name: guid(keyVault.id, p.id, roles.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: p.id
    principalType: p.type
  }
}]

// ---- Key Vault: the deploying user writes the secrets (scripts/postprovision.*); the app only reads them ------
resource keyVaultSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for p in userPrincipal: {
  name: guid(keyVault.id, p.id, roles.keyVaultSecretsOfficer)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: p.id
    principalType: p.type
  }
}]

// ---- Application Insights: Entra-authenticated telemetry ingestion -----------------------------------------
resource monitoringMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for p in principals: {
  name: guid(appInsights.id, p.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: p.id
    principalType: p.type
  }
}]

// ---- Cosmos DB: lineage store, agent statistics included (SQL role assignment, account scope) --------------
resource cosmosDataContributor 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = [for p in principals: {
  parent: cosmos
  name: guid(cosmos.id, p.id, cosmosDataContributorRoleId)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributorRoleId}'
    principalId: p.id
    scope: cosmos.id
  }
}]
