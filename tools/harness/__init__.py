"""Running the Function App without the Functions host: the offline function index, the Durable replay
harness and the local Cosmos DB server launcher. Used by ``tools`` and by the tests alike.
"""
