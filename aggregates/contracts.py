"""Contracts: one product for one API owner, with annual terms and an optional quota."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date

from aggregates.periods import Term, term_for
from aggregates.products import Product

_CONTRACT_NAMESPACE = uuid.UUID("6f1d3c1e-8a8e-4c55-9b0e-2d8f5a6c7b10")

OWNER_SCOPE = "api-owner"


def user_scope(leaf_user_id: str) -> str:
    return f"leaf-user:{leaf_user_id}"


def contract_id_for(api_owner: str, product: Product) -> str:
    """A name-based UUID, so replaying or re-deriving state never mints a second contract."""
    return str(uuid.uuid5(_CONTRACT_NAMESPACE, f"{api_owner}\x1f{product.value}"))


@dataclass(frozen=True, slots=True)
class Contract:
    """What is billed: the term calendar starts at the first counted event's UTC day."""

    contract_id: str
    api_owner: str
    product: Product
    start: date
    quota_m2: float | None = None

    def term(self, day: date) -> Term:
        return term_for(self.start, day)

    def with_quota(self, quota_m2: float | None) -> Contract:
        return replace(self, quota_m2=quota_m2)

    def backdated(self, day: date) -> Contract:
        """A late event older than the first one seen starts the first term on its day."""
        return replace(self, start=min(self.start, day))


def new_contract(api_owner: str, product: Product, first_day: date) -> Contract:
    return Contract(contract_id_for(api_owner, product), api_owner, product, first_day)
