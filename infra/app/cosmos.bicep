// Cosmos DB for NoSQL, serverless (pay per request, nothing at idle but storage), Entra-only data plane
// (the module disables local auth and key-based metadata writes by default). Data access is granted by a SQL
// role assignment in rbac.bicep.

@description('Cosmos DB account name.')
param name string

@description('Location of the account.')
param location string = resourceGroup().location

@description('Tags.')
param tags object = {}

@description('Database name (COSMOS_DATABASE).')
param databaseName string = 'reynolds'

@description('Lineage container (COSMOS_LINEAGE_CONTAINER): chains, decisions, effect ledger.')
param lineageContainerName string = 'lineage'

module account 'br/public:avm/res/document-db/database-account:0.16.0' = {
  name: 'cosmos-account'
  params: {
    name: name
    location: location
    tags: tags
    capabilitiesToAdd: [
      'EnableServerless'
    ]
    zoneRedundant: false
    defaultConsistencyLevel: 'Session'
    // Periodic backup works on every serverless account; continuous tiers vary by region.
    backupPolicyType: 'Periodic'
    networkRestrictions: {
      publicNetworkAccess: 'Enabled'
      ipRules: []
      virtualNetworkRules: []
    }
    sqlDatabases: [
      {
        name: databaseName
        containers: [
          {
            // defaultTtl -1: TTL on, no default expiry; items carry their own `ttl` (dedupe >= 72 h).
            name: lineageContainerName
            paths: [
              '/pk'
            ]
            defaultTtl: -1
          }
        ]
      }
    ]
  }
}

output name string = account.outputs.name
output resourceId string = account.outputs.resourceId
output endpoint string = account.outputs.endpoint
