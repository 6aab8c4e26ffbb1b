"""Fault injection for tests, ``make arena`` scenarios and drills: a faulty lineage store (and a Cosmos fault
proxy), Durable client outages and fake-GitHub fault modes, all on the simulated world's clock."""
