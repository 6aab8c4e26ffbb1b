// Log Analytics + workspace-based Application Insights with Entra-authenticated ingestion (local auth off):
// the app publishes with its identity (Monitoring Metrics Publisher, see rbac.bicep).

@description('Location of the monitoring resources.')
param location string = resourceGroup().location

@description('Tags.')
param tags object = {}

@description('Log Analytics workspace name.')
param logAnalyticsName string

@description('Application Insights name.')
param applicationInsightsName string

@description('Days Log Analytics keeps data (30 is included in the ingestion price).')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.11.1' = {
  name: 'loganalytics'
  params: {
    name: logAnalyticsName
    location: location
    tags: tags
    dataRetention: retentionInDays
  }
}

module appInsights 'br/public:avm/res/insights/component:0.6.0' = {
  name: 'appinsights'
  params: {
    name: applicationInsightsName
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    disableLocalAuth: true
  }
}

output logAnalyticsWorkspaceId string = logAnalytics.outputs.resourceId
output applicationInsightsName string = appInsights.outputs.name
output applicationInsightsId string = appInsights.outputs.resourceId
output applicationInsightsConnectionString string = appInsights.outputs.connectionString
