// The Reynolds Function App on Flex Consumption. Every app setting the code reads (shared/settings.py) is set
// here: secrets as Key Vault references, endpoints from resource outputs, the rest at their code defaults.
// tests/test_settings_contract.py compares the keys of `appSettings` below with the settings model.

@description('Function App name.')
param name string

@description('Location of the Function App.')
param location string = resourceGroup().location

@description('Tags; the azd-service-name tag is added here.')
param tags object = {}

@description('azd service name this app deploys (azure.yaml).')
param serviceName string = 'api'

@description('Resource id of the Flex Consumption plan.')
param appServicePlanId string

@description('Python runtime version.')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Instance memory in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Maximum number of instances.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Host storage account (identity-based AzureWebJobsStorage and the deployment container).')
param storageAccountName string

@description('Blob container holding the deployment package.')
param deploymentStorageContainerName string

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the user-assigned identity.')
param identityClientId string

@description('Application Insights connection string (Entra-authenticated ingestion; contains no credential).')
param applicationInsightsConnectionString string

@description('Cosmos DB account endpoint.')
param cosmosEndpoint string

@description('Cosmos DB database name.')
param cosmosDatabaseName string

@description('Cosmos DB lineage container name.')
param lineageContainerName string

@description('Service Bus fully qualified namespace (host name).')
param serviceBusFqdn string

@description('Service Bus queue of inbound events.')
param eventsQueueName string

@description('Service Bus queue of outbound messages.')
param outQueueName string

@description('Azure OpenAI endpoint.')
param openAiEndpoint string

@description('Azure OpenAI chat deployment name.')
param openAiDeploymentName string

@description('Durable Functions task hub name.')
param taskHubName string

@description('GitHub App id.')
param githubAppId string = ''

@description('GitHub App id of the Reynolds bot.')
param botAppId string = ''

@description('Login of the Reynolds bot.')
param botLogin string = 'reynolds[bot]'

@description('owner/repo for tracking issues.')
param trackingRepo string = ''

@description('Public Graph notification URL.')
param graphNotificationUrl string = ''

@description('Comma-separated Graph resources kept subscribed.')
param graphSubscriptionResources string = ''

@description('Routing profile.')
@allowed([
  'default'
  'reply-all'
])
param routingProfile string = 'default'

@description('Automated hops after the last human action before events are held as loop (LOOP_MAX_AUTOMATED_DEPTH).')
@minValue(1)
@maxValue(50)
param loopMaxAutomatedDepth int = 4

@description('How long a Reynolds write counts as the cause of an automation acting on the same target (LOOP_CAUSAL_WINDOW_SECONDS).')
@minValue(60)
@maxValue(2592000)
param loopCausalWindowSeconds int = 86400

@description('How long a Reynolds write makes an automation acting anywhere in its group continue its chain (LOOP_SCOPE_WINDOW_SECONDS).')
@minValue(0)
@maxValue(2592000)
param loopScopeWindowSeconds int = 86400

@description('Automated events Reynolds answers per chain (LOOP_CHAIN_BUDGET).')
@minValue(1)
@maxValue(1000)
param loopChainBudget int = 2

@description('Automated events one event may cause before it counts as amplification (LOOP_MAX_CHILDREN).')
@minValue(1)
@maxValue(100)
param loopMaxChildren int = 2

@description('Sliding window of the write breakers (LOOP_BREAKER_WINDOW_SECONDS).')
@minValue(60)
@maxValue(604800)
param loopBreakerWindowSeconds int = 3600

@description('Answers to automations per target per window before its breaker opens (LOOP_TARGET_MAX_WRITES).')
@minValue(1)
@maxValue(10000)
param loopTargetMaxWrites int = 20

@description('Answers to one automation across its organisation per window before its breaker opens (LOOP_COUNTERPART_MAX_WRITES).')
@minValue(1)
@maxValue(10000)
param loopCounterpartMaxWrites int = 11

@description('The same text in this many exchanges of one automation per window opens its breaker (LOOP_COUNTERPART_MAX_REPEATS).')
@minValue(2)
@maxValue(100)
param loopCounterpartMaxRepeats int = 2

@description('Open to half-open after this long (doubles on every re-trip) (LOOP_BREAKER_COOLDOWN_SECONDS).')
@minValue(60)
@maxValue(604800)
param loopBreakerCooldownSeconds int = 3600

@description('An automation answering Reynolds within this time answers at machine pace (LOOP_FAST_REPLY_SECONDS).')
@minValue(1)
@maxValue(3600)
param loopFastReplySeconds int = 60

@description('Kept for compatibility (the counterpart breaker counts over LOOP_BREAKER_WINDOW_SECONDS) (LOOP_COUNTERPART_WINDOW_SECONDS).')
@minValue(60)
@maxValue(2592000)
param loopCounterpartWindowSeconds int = 86400

@description('Delivery dedupe horizon (at least 72 h: GitHub allows redelivery for 3 days) (LOOP_DEDUPE_TTL_HOURS).')
@minValue(72)
@maxValue(720)
param loopDedupeTtlHours int = 72

@description('How long chains, events and effects are kept (LOOP_LINEAGE_TTL_DAYS).')
@minValue(1)
@maxValue(3650)
param loopLineageTtlDays int = 30

@description('Organisations that share loop evidence (org=org=... per group, groups separated by ;), e.g. github:contoso=teams:<tenant id> (LOOP_LINKED_SCOPES).')
@maxLength(4000)
param loopLinkedScopes string = ''

@description('The Teams tenant Reynolds posts in; empty = the deployment tenant (LOOP_TEAMS_TENANT_ID).')
param loopTeamsTenantId string = ''

@description('Name of the Key Vault holding the app secrets (written by scripts/postprovision, never by this template).')
param keyVaultName string

// Key Vault secret names; scripts/postprovision.* write the values (tests/test_bicep_upstream.py keeps the two in
// step). A reference without a secret version always resolves the current version.
var secretNames = {
  githubWebhookSecret: 'github-webhook-secret'
  githubAppPrivateKey: 'github-app-private-key'
  teamsOutgoingWebhookToken: 'teams-outgoing-webhook-token'
  graphClientState: 'graph-client-state'
  markerSigningKey: 'reynolds-marker-key'
}

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

var appSettings = {
  // ---- Functions host (identity-based host storage; Durable task hub needs blob, queue and table) ----------
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: stg.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: stg.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: stg.properties.primaryEndpoints.table
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  // Service Bus trigger and output: identity-based connection `ServiceBusConnection`.
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusFqdn
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identityClientId
  // ---- Identity used by DefaultAzureCredential / ManagedIdentityCredential in the code ----------------------
  AZURE_CLIENT_ID: identityClientId
  // ---- GitHub ------------------------------------------------------------------------------------------------
  GITHUB_WEBHOOK_SECRET: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${secretNames.githubWebhookSecret})'
  GITHUB_API_URL: 'https://api.github.com'
  GITHUB_APP_ID: githubAppId
  GITHUB_APP_PRIVATE_KEY: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${secretNames.githubAppPrivateKey})'
  GITHUB_TIMEOUT_SECONDS: '10'
  // ---- Reynolds identity and loop guard ----------------------------------------------------------------------
  REYNOLDS_BOT_LOGIN: botLogin
  REYNOLDS_BOT_APP_ID: botAppId
  REYNOLDS_MARKER_KEY: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${secretNames.markerSigningKey})'
  REYNOLDS_ROUTING_PROFILE: routingProfile
  REYNOLDS_TRACKING_REPO: trackingRepo
  // Chain links in status comments and paused notes open the explorer page (function key required).
  REYNOLDS_EXPLORER_URL: 'https://${name}.azurewebsites.net/api'
  LOOP_MAX_AUTOMATED_DEPTH: string(loopMaxAutomatedDepth)
  LOOP_CAUSAL_WINDOW_SECONDS: string(loopCausalWindowSeconds)
  LOOP_SCOPE_WINDOW_SECONDS: string(loopScopeWindowSeconds)
  LOOP_CHAIN_BUDGET: string(loopChainBudget)
  LOOP_MAX_CHILDREN: string(loopMaxChildren)
  LOOP_BREAKER_WINDOW_SECONDS: string(loopBreakerWindowSeconds)
  LOOP_TARGET_MAX_WRITES: string(loopTargetMaxWrites)
  LOOP_COUNTERPART_MAX_WRITES: string(loopCounterpartMaxWrites)
  LOOP_COUNTERPART_MAX_REPEATS: string(loopCounterpartMaxRepeats)
  LOOP_BREAKER_COOLDOWN_SECONDS: string(loopBreakerCooldownSeconds)
  LOOP_FAST_REPLY_SECONDS: string(loopFastReplySeconds)
  LOOP_COUNTERPART_WINDOW_SECONDS: string(loopCounterpartWindowSeconds)
  LOOP_DEDUPE_TTL_HOURS: string(loopDedupeTtlHours)
  LOOP_LINEAGE_TTL_DAYS: string(loopLineageTtlDays)
  LOOP_LINKED_SCOPES: loopLinkedScopes
  LOOP_TEAMS_TENANT_ID: empty(loopTeamsTenantId) ? tenant().tenantId : loopTeamsTenantId
  // ---- Lineage store -----------------------------------------------------------------------------------------
  LINEAGE_STORE: 'cosmos'
  COSMOS__accountEndpoint: cosmosEndpoint
  COSMOS_DATABASE: cosmosDatabaseName
  COSMOS_LINEAGE_CONTAINER: lineageContainerName
  // ---- Durable Functions -------------------------------------------------------------------------------------
  TASK_HUB_NAME: taskHubName
  // ---- Azure OpenAI ------------------------------------------------------------------------------------------
  AZURE_OPENAI_ENDPOINT: openAiEndpoint
  AZURE_OPENAI_DEPLOYMENT: openAiDeploymentName
  AZURE_OPENAI_TIMEOUT_SECONDS: '30'
  AZURE_OPENAI_TOKEN_BUDGET: '60000'
  PLAN_CACHE_TTL_HOURS: '24'
  // ---- Teams and Graph ---------------------------------------------------------------------------------------
  TEAMS_OUTGOING_WEBHOOK_TOKEN: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${secretNames.teamsOutgoingWebhookToken})'
  GRAPH_CLIENT_STATE: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${secretNames.graphClientState})'
  GRAPH_API_URL: 'https://graph.microsoft.com/v1.0'
  // The Azure Bot (app/bot.bicep) uses this identity as its Microsoft App id (UserAssignedMSI): no secret.
  TEAMS_BOT_APP_ID: identityClientId
  GRAPH_NOTIFICATION_URL: graphNotificationUrl
  GRAPH_SUBSCRIPTION_RESOURCES: graphSubscriptionResources
  // ---- Service Bus queues ------------------------------------------------------------------------------------
  SERVICEBUS_EVENTS_QUEUE: eventsQueueName
  SERVICEBUS_OUT_QUEUE: outQueueName
}

module api 'br/public:avm/res/web/site:0.15.1' = {
  name: '${serviceName}-flex-consumption'
  params: {
    kind: 'functionapp,linux'
    name: name
    location: location
    tags: union(tags, {
      'azd-service-name': serviceName
    })
    serverFarmResourceId: appServicePlanId
    httpsOnly: true
    managedIdentities: {
      systemAssigned: false
      userAssignedResourceIds: [
        identityId
      ]
    }
    // Key Vault references resolve with the user-assigned identity (there is no system identity).
    keyVaultAccessIdentityResourceId: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${stg.properties.primaryEndpoints.blob}${deploymentStorageContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
    // Flex Consumption rejects the classic site properties (alwaysOn, ftpsState, linuxFxVersion, ...): only
    // settings the plan honours are set here; FTP is not offered on Flex at all.
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
    }
    appSettingsKeyValuePairs: appSettings
  }
}

output SERVICE_API_NAME string = api.outputs.name
// The module's own output (Flex apps may get a unique regional default host name): an `existing` site named from
// a module output could not read its properties (Bicep BCP307).
output SERVICE_API_URI string = 'https://${api.outputs.defaultHostname}'
