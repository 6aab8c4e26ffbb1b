// Reynolds: everything `azd up` provisions. Subscription scope so the resource group is part of the template.
// Keyless by design: every data-plane call uses the app's user-assigned identity (see app/rbac.bicep), secrets the
// code needs live in Key Vault and reach the app as Key Vault references, and no output carries a key. No secret is
// a parameter: scripts/postprovision.* writes them into the vault (docs/deploy.md, "Secrets").
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; seeds the resource token and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Primary location for all resources (must offer Flex Consumption; azd asks for it).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Location of the Azure OpenAI account when the model is not offered in the primary location; empty = primary location.')
param openAiLocation string = ''

@description('Object id of the deploying user or pipeline principal; gets the same data roles as the app so local runs reach Azure. Empty = none.')
param principalId string = ''

@description('Kind of the deploying principal.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

// ---- name overrides (empty = derived from the resource token) ----------------------------------------------
@description('Override: resource group name.')
param resourceGroupName string = ''
@description('Override: Function App name.')
param apiServiceName string = ''
@description('Override: user-assigned identity name.')
param apiUserAssignedIdentityName string = ''
@description('Override: Flex Consumption plan name.')
param appServicePlanName string = ''
@description('Override: storage account name.')
param storageAccountName string = ''
@description('Override: Service Bus namespace name.')
param serviceBusNamespaceName string = ''
@description('Override: Cosmos DB account name.')
param cosmosAccountName string = ''
@description('Override: Azure OpenAI account name.')
param openAiAccountName string = ''
@description('Override: Key Vault name.')
param keyVaultName string = ''
@description('Override: Log Analytics workspace name.')
param logAnalyticsName string = ''
@description('Override: Application Insights name.')
param applicationInsightsName string = ''

// ---- app configuration ---------------------------------------------------------------------------------------
@description('Python version of the Flex Consumption runtime.')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Flex Consumption instance memory in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound of Flex Consumption instances (caps cost and fan-out pressure on GitHub).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Name of the chat model deployment (app setting AZURE_OPENAI_DEPLOYMENT).')
param chatModelDeploymentName string = 'chat'

// Default model: a dated choice. Its new-customer and retirement dates (and their source) are in
// infra/model-lifecycle.json; the preprovision hook (scripts/model_lifecycle.py) refuses it once new subscriptions
// can no longer deploy it. Change it here, in main.parameters.json and in that file's `default` together.
@description('Chat model name (azd env AZURE_OPENAI_MODEL).')
param chatModelName string = 'gpt-5.4-mini'

@description('Chat model version (azd env AZURE_OPENAI_MODEL_VERSION).')
param chatModelVersion string = '2026-03-17'

@description('Chat model deployment SKU.')
@allowed([
  'GlobalStandard'
  'Standard'
  'DataZoneStandard'
])
param chatModelSkuName string = 'GlobalStandard'

@description('Chat model capacity in thousands of tokens per minute.')
@minValue(1)
param chatModelCapacity int = 30

@description('GitHub App id (app setting GITHUB_APP_ID); empty until the App is registered.')
param githubAppId string = ''

@description('GitHub App id of the Reynolds bot used by the loop guard to recognise itself (REYNOLDS_BOT_APP_ID).')
param botAppId string = ''

@description('Login of the Reynolds bot (REYNOLDS_BOT_LOGIN).')
param botLogin string = 'reynolds[bot]'

@description('owner/repo where Reynolds files its tracking issues (REYNOLDS_TRACKING_REPO); empty = the source repository.')
param trackingRepo string = ''

@description('Public URL Graph posts change notifications to (GRAPH_NOTIFICATION_URL); empty until a subscription is created.')
param graphNotificationUrl string = ''

@description('Comma-separated Graph resources the subscription timer keeps subscribed (GRAPH_SUBSCRIPTION_RESOURCES), e.g. teams/{team-id}/channels/{channel-id}/messages.')
param graphSubscriptionResources string = ''

@description('Routing profile (REYNOLDS_ROUTING_PROFILE).')
@allowed([
  'default'
  'reply-all'
])
param routingProfile string = 'default'

@description('Email address that receives alert notifications; empty = alerts fire without notification.')
param alertEmail string = ''

// ---- Loop guard (azd env set LOOP_…; infra/main.parameters.json maps each; code defaults: shared/settings.py) ----
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

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = !empty(apiServiceName) ? apiServiceName : '${abbrs.webSitesFunctions}api-${resourceToken}'
var deploymentStorageContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'
var eventsQueueName = 'reynolds-events'
var outQueueName = 'reynolds-out'
var cosmosDatabaseName = 'reynolds'
var lineageContainerName = 'lineage'
var taskHubName = 'reynolds'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

// The one identity the app uses for everything (storage, Service Bus, Cosmos, OpenAI, Key Vault, App Insights).
module apiIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'apiUserAssignedIdentity'
  scope: rg
  params: {
    name: !empty(apiUserAssignedIdentityName) ? apiUserAssignedIdentityName : '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module appServicePlan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'appserviceplan'
  scope: rg
  params: {
    name: !empty(appServicePlanName) ? appServicePlanName : '${abbrs.webServerFarms}${resourceToken}'
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true
    location: location
    tags: tags
  }
}

// Host storage: deployment package, Durable task hub (blobs, queues, tables). Shared keys off: identity only.
module storage 'br/public:avm/res/storage/storage-account:0.8.3' = {
  name: 'storage'
  scope: rg
  params: {
    name: !empty(storageAccountName) ? storageAccountName : '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    // The module defaults to Standard_GRS. Host storage holds only the deployment package (re-deployable) and the
    // Durable task hub's transient state: locally redundant storage serves it at about half the price.
    skuName: 'Standard_LRS'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    dnsEndpointType: 'Standard'
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: [
        {
          name: deploymentStorageContainerName
        }
      ]
    }
    minimumTlsVersion: 'TLS1_2'
  }
}

module monitoring './app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: !empty(logAnalyticsName) ? logAnalyticsName : '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: !empty(applicationInsightsName) ? applicationInsightsName : '${abbrs.insightsComponents}${resourceToken}'
  }
}

module messaging './app/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: !empty(serviceBusNamespaceName) ? serviceBusNamespaceName : '${abbrs.serviceBusNamespaces}${resourceToken}'
    location: location
    tags: tags
    eventsQueueName: eventsQueueName
    outQueueName: outQueueName
  }
}

module cosmos './app/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: {
    name: !empty(cosmosAccountName) ? cosmosAccountName : '${abbrs.documentDBDatabaseAccounts}${resourceToken}'
    location: location
    tags: tags
    databaseName: cosmosDatabaseName
    lineageContainerName: lineageContainerName
  }
}

module openAi './app/openai.bicep' = {
  name: 'openai'
  scope: rg
  params: {
    name: !empty(openAiAccountName) ? openAiAccountName : '${abbrs.openAIAccounts}${resourceToken}'
    location: !empty(openAiLocation) ? openAiLocation : location
    tags: tags
    deploymentName: chatModelDeploymentName
    modelName: chatModelName
    modelVersion: chatModelVersion
    skuName: chatModelSkuName
    capacity: chatModelCapacity
  }
}

module keyVault './app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: !empty(keyVaultName) ? keyVaultName : '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
  }
}

module rbac './app/rbac.bicep' = {
  name: 'rbacAssignments'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    serviceBusNamespaceName: messaging.outputs.name
    cosmosAccountName: cosmos.outputs.name
    openAiAccountName: openAi.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appPrincipalId: apiIdentity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

module api './app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    appServicePlanId: appServicePlan.outputs.resourceId
    pythonVersion: pythonVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    storageAccountName: storage.outputs.name
    deploymentStorageContainerName: deploymentStorageContainerName
    identityId: apiIdentity.outputs.resourceId
    identityClientId: apiIdentity.outputs.clientId
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabaseName: cosmosDatabaseName
    lineageContainerName: lineageContainerName
    serviceBusFqdn: messaging.outputs.fullyQualifiedNamespace
    eventsQueueName: eventsQueueName
    outQueueName: outQueueName
    openAiEndpoint: openAi.outputs.endpoint
    openAiDeploymentName: chatModelDeploymentName
    taskHubName: taskHubName
    githubAppId: githubAppId
    botAppId: botAppId
    botLogin: botLogin
    trackingRepo: trackingRepo
    graphNotificationUrl: graphNotificationUrl
    graphSubscriptionResources: graphSubscriptionResources
    routingProfile: routingProfile
    loopMaxAutomatedDepth: loopMaxAutomatedDepth
    loopCausalWindowSeconds: loopCausalWindowSeconds
    loopScopeWindowSeconds: loopScopeWindowSeconds
    loopChainBudget: loopChainBudget
    loopMaxChildren: loopMaxChildren
    loopBreakerWindowSeconds: loopBreakerWindowSeconds
    loopTargetMaxWrites: loopTargetMaxWrites
    loopCounterpartMaxWrites: loopCounterpartMaxWrites
    loopCounterpartMaxRepeats: loopCounterpartMaxRepeats
    loopBreakerCooldownSeconds: loopBreakerCooldownSeconds
    loopFastReplySeconds: loopFastReplySeconds
    loopCounterpartWindowSeconds: loopCounterpartWindowSeconds
    loopDedupeTtlHours: loopDedupeTtlHours
    loopLineageTtlDays: loopLineageTtlDays
    loopLinkedScopes: loopLinkedScopes
    loopTeamsTenantId: loopTeamsTenantId
    keyVaultName: keyVault.outputs.name
  }
  // Key Vault references and identity-based connections resolve at start-up: roles first.
  dependsOn: [
    rbac
  ]
}

// The Teams bot (issue 22): speaks as the app's own identity through the Bot Connector; no secret.
module bot './app/bot.bicep' = {
  name: 'bot'
  scope: rg
  params: {
    name: 'bot-${resourceToken}'
    tags: tags
    appHostName: replace(api.outputs.SERVICE_API_URI, 'https://', '')
    identityResourceId: apiIdentity.outputs.resourceId
    identityClientId: apiIdentity.outputs.clientId
  }
}

module alerts './app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    serviceBusNamespaceId: messaging.outputs.resourceId
    alertEmail: alertEmail
  }
}

module workbook './app/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
  }
}

// ---- outputs azd exports into the environment (scripts/postprovision.* read them) -------------------------------
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.SERVICE_API_NAME
output SERVICE_API_NAME string = api.outputs.SERVICE_API_NAME
output SERVICE_API_URI string = api.outputs.SERVICE_API_URI
output AZURE_USER_ASSIGNED_IDENTITY_CLIENT_ID string = apiIdentity.outputs.clientId
// scripts/grant-graph-permissions.* assign Microsoft Graph application roles to this service principal.
output AZURE_USER_ASSIGNED_IDENTITY_PRINCIPAL_ID string = apiIdentity.outputs.principalId
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output COSMOS_DATABASE string = cosmosDatabaseName
output COSMOS_LINEAGE_CONTAINER string = lineageContainerName
output SERVICEBUS_FQDN string = messaging.outputs.fullyQualifiedNamespace
output SERVICEBUS_EVENTS_QUEUE string = eventsQueueName
output SERVICEBUS_OUT_QUEUE string = outQueueName
output AZURE_OPENAI_ENDPOINT string = openAi.outputs.endpoint
output AZURE_OPENAI_DEPLOYMENT string = chatModelDeploymentName
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URI string = keyVault.outputs.uri
output TASK_HUB_NAME string = taskHubName
output BOT_ID string = bot.outputs.BOT_ID
output TEAMS_BOT_NAME string = bot.outputs.name
// Entra-authenticated ingestion: the connection string holds an instrumentation key (an identifier, not a
// credential) and ingestion without a token is refused because local auth is disabled.
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.applicationInsightsConnectionString
