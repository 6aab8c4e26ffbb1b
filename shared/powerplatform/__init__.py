"""Power Platform: solution deployments followed to the end, and the reads the Platform specialist offers.

:mod:`.asyncops` — Dataverse async operation states; :mod:`.deploy` — the deployment as a pure state machine
(stage → approval on production → import async → poll on durable timers → publish → report); :mod:`.client` —
the Dataverse Web API and Power Platform (BAP) admin API over httpx with a token from azure-identity. The fake
both are tested against is ``tools/fakes/dataverse.py``.
"""
