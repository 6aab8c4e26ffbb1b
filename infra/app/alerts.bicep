// Alerts on what needs a human: dead-lettered messages, a loop breaker that opened, failed orchestrations and
// HTTP 5xx. The custom metric names match shared/telemetry.py and the workbook.

@description('Location of the log alert rules.')
param location string = resourceGroup().location

@description('Tags.')
param tags object = {}

@description('Resource token used in alert names.')
param resourceToken string

@description('Resource id of Application Insights (scope of the log alerts).')
param applicationInsightsId string

@description('Resource id of the Service Bus namespace (scope of the dead-letter alert).')
param serviceBusNamespaceId string

@description('Email address notified by the alerts; empty = no action group.')
param alertEmail string = ''

@description('Severity of the alerts (0 critical .. 4 verbose).')
@allowed([
  0
  1
  2
  3
  4
])
param severity int = 2

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-reynolds-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'reynolds'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var actionGroups = empty(alertEmail) ? [] : [
  {
    actionGroupId: actionGroup.id
  }
]
var logActionGroups = empty(alertEmail) ? [] : [
  actionGroup.id
]

resource deadLetterAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'ma-reynolds-deadletter-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Messages were dead-lettered on a Reynolds queue (poison message or MaxDeliveryCount 10 reached).'
    severity: severity
    enabled: true
    scopes: [
      serviceBusNamespaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'DeadletteredMessages'
          metricName: 'DeadletteredMessages'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Maximum'
        }
      ]
    }
    actions: actionGroups
  }
}

var logAlerts = [
  {
    key: 'breaker-opened'
    description: 'A Reynolds loop breaker opened: an automated chain was stopped.'
    query: 'customMetrics | where name == "reynolds.breaker.opened" | summarize opened = sum(valueSum)'
    column: 'opened'
  }
  {
    key: 'orchestration-failed'
    description: 'Reynolds orchestrations failed.'
    query: 'customMetrics | where name == "reynolds.orchestrations" | where tostring(customDimensions.outcome) == "failed" | summarize failed = sum(valueSum)'
    column: 'failed'
  }
  {
    // issue 20: anything in reynolds-inbox-poison. The reader (triggers/inbox.py inbox_poison) counts each item it
    // reads; the host's own move logs "... reached MaxDequeueCount ... Moving message to queue 'reynolds-inbox-poison'"
    // (azure-webjobs-sdk QueueProcessor.CopyMessageToPoisonQueueAsync), so the alert fires even if the reader is down.
    key: 'inbox-poisoned'
    description: 'Reynolds inbox items reached the poison queue (a person may be waiting for an answer).'
    query: 'union (customMetrics | where name == "reynolds.inbox.poisoned" | summarize n = sum(valueSum)), (traces | where message has "MaxDequeueCount" and message has "reynolds-inbox-poison" | summarize n = count()) | summarize poisoned = sum(n)'
    column: 'poisoned'
  }
  {
    key: 'http-5xx'
    description: 'Reynolds answered HTTP 5xx (webhooks may be lost: GitHub does not redeliver).'
    query: 'requests | where toint(resultCode) >= 500 | summarize errors = count()'
    column: 'errors'
  }
]

resource logAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [for alert in logAlerts: {
  name: 'sqr-reynolds-${alert.key}-${resourceToken}'
  location: location
  tags: tags
  properties: {
    displayName: 'Reynolds: ${alert.key}'
    description: alert.description
    severity: severity
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: alert.query
          timeAggregation: 'Total'
          metricMeasureColumn: alert.column
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: logActionGroups
    }
  }
}]
