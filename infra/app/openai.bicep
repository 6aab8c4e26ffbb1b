// Azure OpenAI account with a custom subdomain (required for Entra token auth) and local (key) auth disabled,
// plus one chat deployment whose name, model, version, SKU and capacity are parameters.

@description('Azure OpenAI account name (also the custom subdomain).')
param name string

@description('Location of the account (the model must be offered there).')
param location string = resourceGroup().location

@description('Tags.')
param tags object = {}

@description('Chat deployment name (AZURE_OPENAI_DEPLOYMENT).')
param deploymentName string

@description('Model name.')
param modelName string

@description('Model version.')
param modelVersion string

@description('Deployment SKU.')
@allowed([
  'GlobalStandard'
  'Standard'
  'DataZoneStandard'
])
param skuName string = 'GlobalStandard'

@description('Capacity in thousands of tokens per minute.')
@minValue(1)
param capacity int = 30

module account 'br/public:avm/res/cognitive-services/account:0.13.0' = {
  name: 'openai-account'
  params: {
    name: name
    kind: 'OpenAI'
    location: location
    tags: tags
    sku: 'S0'
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    deployments: [
      {
        name: deploymentName
        model: {
          format: 'OpenAI'
          name: modelName
          version: modelVersion
        }
        sku: {
          name: skuName
          capacity: capacity
        }
      }
    ]
  }
}

output name string = account.outputs.name
output resourceId string = account.outputs.resourceId
output endpoint string = account.outputs.endpoint
