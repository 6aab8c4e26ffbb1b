"""Azure Service Bus: the message contract (structured CloudEvents with lineage) and the publisher.

azure-servicebus is imported only here. Nothing here imports another platform package.
"""
