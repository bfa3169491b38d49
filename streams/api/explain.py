"""/usage/explain and /usage/ground: explain my bill, and the counted ground as GeoJSON
(the page at /ui draws the one and asks the other on a click)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from shapely.geometry import Point, mapping
from shapely.geometry.base import BaseGeometry

from aggregates import GeometryError, normalize_geometry
from aggregates.contracts import OWNER_SCOPE, Contract, user_scope
from aggregates.coverage import Covering
from aggregates.explain import Counted, Question, counted_ground, explain
from schemas.api import (
    CountedOut,
    DeduplicatedOut,
    ExplainAreaQuery,
    ExplainIn,
    ExplainOut,
    ExplainQuery,
    GroundFeatureOut,
    GroundOut,
    GroundPropertiesOut,
    GroundQuery,
    OriginOut,
    ScopeQuery,
)
from schemas.units import Unit, convert
from streams.api.deps import READ, Scope
from streams.api.errors import ERROR_RESPONSES, bad_parameter
from streams.api.settled import SettledRoute

router = APIRouter(prefix="/usage", tags=["usage"], responses=ERROR_RESPONSES,
                   route_class=SettledRoute)
_NOWHERE = Point()  # the map's question has no point: it lists pieces


@router.get("/explain", response_model=ExplainOut,
            summary="Explain my bill: the event that counted a point, and those deduplicated on it")
async def explain_point(q: Annotated[ExplainQuery, Query()], scope: READ) -> ExplainOut:
    return _explained(q, scope, Point(q.lon, q.lat), q.lon, q.lat)


@router.post("/explain", response_model=ExplainOut,
             summary="Explain my bill for an area: the events that counted the ground inside "
             "it, and those deduplicated on it")
async def explain_area(
    body: ExplainIn, q: Annotated[ExplainAreaQuery, Query()], scope: READ
) -> ExplainOut:
    try:
        where = normalize_geometry(body.geometry.model_dump(),
                                   max_vertices=scope.api.settings.max_vertices)
    except (GeometryError, ValueError, TypeError) as exc:
        raise bad_parameter("geometry", f"geometry: {exc}") from None
    return _explained(q, scope, where, None, None)


def _explained(q: ExplainAreaQuery, scope: Scope, where: BaseGeometry, lon: float | None,
               lat: float | None) -> ExplainOut:
    owner = scope.acting_owner
    contract = scope.meter.contract_for(owner, q.product)
    out = ExplainOut(api_owner=owner, product=q.product, contract_id=None, scope=_scope(q),
                     lon=lon, lat=lat, term_start=None, term_end=None, start_date=None,
                     end_date=None, counted=[], deduplicated=[], page=q.page,
                     page_size=q.page_size, has_more=False)
    if contract is None:
        return out
    question = _question(q, contract, scope.now.date(), where)
    try:
        found = explain(scope.meter, question, (q.page - 1) * q.page_size, q.page_size)
    except ValueError as exc:
        raise bad_parameter("geometry", str(exc)) from None
    term = contract.term(q.date_ or scope.now.date())
    return out.model_copy(update={
        "contract_id": contract.contract_id, "term_start": term.start, "term_end": term.end,
        "start_date": question.start, "end_date": question.end,
        "counted": [_counted_out(c, q.unit) for c in found.counted],
        "deduplicated": [_deduplicated_out(c) for c in found.deduplicated],
        "has_more": found.more,
    })


@router.get("/ground", response_model=GroundOut,
            summary="The counted ground of a scope as GeoJSON, a page at a time")
async def ground(q: Annotated[GroundQuery, Query()], scope: READ) -> GroundOut:
    owner = scope.acting_owner
    contract = scope.meter.contract_for(owner, q.product)
    if contract is None:
        return GroundOut(features=[], next_after=None, api_owner=owner, product=q.product,
                         contract_id=None, scope=_scope(q), start_date=None, end_date=None)
    question = _question(q, contract, scope.now.date())
    pieces = counted_ground(scope.meter, question, q.after, q.limit)
    features = [GroundFeatureOut(geometry=mapping(c.geometry), properties=_properties(c, q.unit))
                for c in pieces]
    return GroundOut(
        features=features, next_after=pieces[-1].piece_id if len(pieces) == q.limit else None,
        api_owner=owner, product=q.product, contract_id=contract.contract_id, scope=_scope(q),
        start_date=question.start, end_date=question.end,
    )


def _scope(q: ScopeQuery) -> str:
    return OWNER_SCOPE if q.leaf_user_id is None else user_scope(q.leaf_user_id)


def _question(q: ScopeQuery, contract: Contract, today: date,
              where: BaseGeometry = _NOWHERE) -> Question:
    term = contract.term(q.date_ or today)
    start, end = q.start_date or term.start, q.end_date or q.date_ or today
    return Question(contract, term.index, _scope(q), where, start, end)


def _counted_out(c: Counted, unit: Unit) -> CountedOut:
    o = c.origin
    origin = None if o is None else OriginOut(
        event_id=o.event_id, leaf_user_id=o.leaf_user_id, event_type=o.event_type,
        timestamp=o.timestamp)
    return CountedOut(piece_id=c.piece_id, day=c.day, piece_area=convert(c.area_m2, unit),
                      inside=convert(c.inside_m2, unit), counted_by=origin, unit=unit)


def _deduplicated_out(c: Covering) -> DeduplicatedOut:
    return DeduplicatedOut(event_id=c.event_id, leaf_user_id=c.leaf_user_id,
                           event_type=c.event_type, product=c.product, timestamp=c.timestamp)


def _properties(c: Counted, unit: Unit) -> GroundPropertiesOut:
    o = c.origin
    return GroundPropertiesOut(
        piece_id=c.piece_id, day=c.day, area=convert(c.area_m2, unit),
        event_id=o and o.event_id, leaf_user_id=o and o.leaf_user_id,
        event_type=o and o.event_type, unit=unit)
