// The Teams bot: an Azure Bot whose identity is the Function App's user-assigned managed identity
// (msaAppType UserAssignedMSI: no app password, no secret anywhere), the Microsoft Teams channel, and the messaging
// endpoint /api/messages (triggers/bot_messages.py verifies the Bot Connector's JWT, audience = msaAppId).
// Declared directly: the public registry has no Azure Verified Module for Microsoft.BotService in the pinned snapshot.
// Types checked against ../shared/fixtures/azure-bicep/types/botservice (tools/bicepcheck).

@description('Azure Bot resource name (globally unique, 2–64 characters).')
@minLength(2)
@maxLength(64)
param name string

@description('Tags.')
param tags object = {}

@description('Name Teams shows for the bot.')
param displayName string = 'Reynolds'

@description('Host name of the Function App (the messaging endpoint is https://<host>/api/messages).')
param appHostName string

@description('Resource id of the user-assigned identity the bot uses as its Microsoft App identity.')
param identityResourceId string

@description('Client id of that identity: the bot id (msaAppId) and the audience of the Bot Connector tokens.')
param identityClientId string

@description('Tenant of the identity.')
param tenantId string = tenant().tenantId

@description('Pricing tier: F0 (free; standard channels such as Teams are free on either) or S1.')
@allowed([
  'F0'
  'S1'
])
param sku string = 'F0'

resource bot 'Microsoft.BotService/botServices@2022-09-15' = {
  name: name
  // Azure Bot is a global resource.
  location: 'global'
  tags: tags
  kind: 'azurebot'
  sku: {
    name: sku
  }
  properties: {
    displayName: displayName
    endpoint: 'https://${appHostName}/api/messages'
    msaAppType: 'UserAssignedMSI'
    msaAppId: identityClientId
    msaAppMSIResourceId: identityResourceId
    msaAppTenantId: tenantId
    // No Direct Line / Web Chat secrets: only channels authenticated by Entra ID.
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource teams 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: bot
  name: 'MsTeamsChannel'
  location: 'global'
  properties: {
    channelName: 'MsTeamsChannel'
    properties: {
      isEnabled: true
      enableCalling: false
    }
  }
}

@description('The bot id (its Microsoft App id): make teams-app writes it into the Teams app manifest.')
output BOT_ID string = bot.properties.msaAppId
output name string = bot.name
output resourceId string = bot.id
output messagingEndpoint string = bot.properties.endpoint
