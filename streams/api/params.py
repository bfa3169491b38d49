"""Path parameters shared by routes, with the limits the schema states."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from schemas.api import MAX_ID_LENGTH

ContractId = Annotated[str, Path(alias="contractId", max_length=MAX_ID_LENGTH)]
LeafUserId = Annotated[str, Path(alias="leafUserId", max_length=MAX_ID_LENGTH)]
WebhookId = Annotated[str, Path(alias="webhookId", max_length=64)]
