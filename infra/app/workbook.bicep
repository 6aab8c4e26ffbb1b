// Operations workbook over the custom metrics shared/telemetry.py records (names must match).

@description('Location of the workbook.')
param location string = resourceGroup().location

@description('Tags.')
param tags object = {}

@description('Resource id of Application Insights (workbook source).')
param applicationInsightsId string

var queries = [
  {
    title: 'Verdicts per hour'
    query: 'customMetrics | where name == "reynolds.verdicts" | extend verdict = tostring(customDimensions.verdict) | summarize count_ = sum(valueSum) by verdict, bin(timestamp, 1h) | render timechart'
    visualization: 'timechart'
  }
  {
    title: 'Loops stopped'
    query: 'customMetrics | where name == "reynolds.loops_stopped" | extend rule = tostring(customDimensions.rule) | summarize stopped = sum(valueSum) by rule, bin(timestamp, 1h) | render columnchart'
    visualization: 'barchart'
  }
  {
    title: 'Breaker states'
    query: 'customMetrics | where name == "reynolds.breaker.transitions" | extend state = tostring(customDimensions.state), key_kind = tostring(customDimensions.key_kind) | summarize transitions = sum(valueSum) by state, key_kind, bin(timestamp, 1h)'
    visualization: 'table'
  }
  {
    title: 'Orchestration outcomes'
    query: 'customMetrics | where name == "reynolds.orchestrations" | extend outcome = tostring(customDimensions.outcome) | summarize runs = sum(valueCount) by outcome, bin(timestamp, 1h) | render timechart'
    visualization: 'timechart'
  }
]

var markdown = [
  {
    type: 1
    name: 'title'
    content: {
      json: '# Reynolds\nVerdicts, loops stopped, breaker states and orchestration outcomes.'
    }
  }
]

var kqlItems = [for (q, i) in queries: {
  type: 3
  name: 'query-${i}'
  content: {
    version: 'KqlItem/1.0'
    title: q.title
    query: q.query
    size: 0
    timeContext: {
      durationMs: 86400000
    }
    queryType: 0
    resourceType: 'microsoft.insights/components'
    visualization: q.visualization
  }
}]

var workbookContent = {
  version: 'Notebook/1.0'
  items: concat(markdown, kqlItems)
  fallbackResourceIds: [
    applicationInsightsId
  ]
  '$schema': 'https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json'
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'reynolds-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Reynolds operations'
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: string(workbookContent)
  }
}

output workbookId string = workbook.id
