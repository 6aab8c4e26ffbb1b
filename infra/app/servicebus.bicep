// Service Bus (Standard: duplicate detection needs it) with the inbound events queue and the outbound queue.
// Local (SAS) auth disabled and no authorization rule created: senders and receivers use Entra roles.
// Pinned to 0.14.1, the last version without listKeys-based secure outputs (those need the SAS rule we omit).

@description('Service Bus namespace name.')
param name string

@description('Location of the namespace.')
param location string = resourceGroup().location

@description('Tags.')
param tags object = {}

@description('Queue of inbound events (SERVICEBUS_EVENTS_QUEUE).')
param eventsQueueName string = 'reynolds-events'

@description('Queue of outbound messages (SERVICEBUS_OUT_QUEUE).')
param outQueueName string = 'reynolds-out'

@description('Duplicate-detection window, ISO 8601 (MessageId dedupe; 20 s to 7 days). 7 days: longer than any retry of an answer (26 h, restarts within 3 days), so a re-sent answer is always a dropped duplicate (shared/platforms/servicebus/contract.py DUPLICATE_DETECTION_WINDOW).')
param duplicateDetectionWindow string = 'P7D'

@description('Default message time to live, ISO 8601; expired messages are dead-lettered.')
param messageTimeToLive string = 'P7D'

var queueDefaults = {
  requiresDuplicateDetection: true
  duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
  deadLetteringOnMessageExpiration: true
  defaultMessageTimeToLive: messageTimeToLive
  maxDeliveryCount: 10
  lockDuration: 'PT1M'
  requiresSession: false
  enablePartitioning: false
}

module namespace 'br/public:avm/res/service-bus/namespace:0.14.1' = {
  name: 'servicebus-namespace'
  params: {
    name: name
    location: location
    tags: tags
    skuObject: {
      name: 'Standard'
    }
    zoneRedundant: false
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    authorizationRules: []
    queues: [
      union(queueDefaults, {
        name: eventsQueueName
      })
      union(queueDefaults, {
        name: outQueueName
      })
    ]
  }
}

output name string = namespace.outputs.name
output resourceId string = namespace.outputs.resourceId
// The module's serviceBusEndpoint output is https://<ns>.servicebus.windows.net:443/ ; the SDK and the trigger want
// the host name. (An `existing` namespace named from a module output could not read it: Bicep BCP307.)
output fullyQualifiedNamespace string = split(split(namespace.outputs.serviceBusEndpoint, '//')[1], ':')[0]
