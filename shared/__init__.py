"""Reynolds' domain core: nothing in this package imports ``azure.functions``."""
