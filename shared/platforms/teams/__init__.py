"""Microsoft Teams: the outgoing webhook (HMAC, activity → envelope), Microsoft Graph (messages, change
notifications) and the Graph subscription keeper.

msgraph-sdk is imported only here. Nothing here imports another platform package.
"""
