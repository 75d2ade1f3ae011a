"""Calibration records: which model, prompt and method a threshold was calibrated for, in a database.

A conformal threshold is only valid for the model, the prompt and the alpha it was calibrated
with, so each calibration is stored with all three (the prompt as the SHA-256 of its template
text) and found again by them with ``CalibrationStore.latest``::

    store = CalibrationStore("calibrations.db")          # a SQLite file, or any SQLAlchemy URL
    record = CalibrationRecord.from_result(calibration, model_id=vlm.model_id, template=TEMPLATE)
    store.save(record)
    again = store.latest(vlm.model_id, template_hash(TEMPLATE), 0.1, "lac")
    calibration = again.result()                          # the pydantic object, as calibrated

The table ``calibrations`` has one row per calibration run:

- ``id``, ``model_id``, ``template_hash`` (64 hex digits), ``alpha``, ``method`` (``lac``, ``aps``,
  ``raps``, ``crc``, ``ltt`` or ``learned``), ``n`` (calibration questions), ``created_at`` (UTC);
- ``threshold`` (REAL): the threshold when it is finite, **NULL when it is not** — ``+inf`` (split
  conformal with too few questions for alpha: every option is in the set; risk control: answer
  nothing) or ``-inf`` (risk control: answer everything);
- ``threshold_text``: the exact threshold as Python writes it (``repr``: ``"0.7341"``, ``"inf"``,
  ``"-inf"``), so that NULL is never ambiguous and a finite value reads back bit for bit;
- ``result_json``: the full pydantic result (``ConformalCalibration``, ``SelectiveCalibration``,
  ``AbstentionPolicy`` or ``AnswerGate``) as JSON, infinities written ``Infinity``/``-Infinity``.

An ``AnswerGate`` (what ``foveate calibrate`` writes) is stored with ``template_hash`` set to its
``GateKey.sha256()``: the model and its weights, the workflow's spec, the strategies and the budget it was
calibrated for, so that a lookup by key finds only a gate made for exactly that.

The table is created on first use (``create_all``); it has its own declarative base and lives in
a database of its own, apart from the insight memory (whose migrations refuse foreign tables).
This module is the only one in ``foveate.conformal`` that needs SQLAlchemy; the package does not
import it eagerly.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import URL, DateTime, Float, Integer, String, Text, create_engine, inspect, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from foveate.conformal.answer_gate import AnswerGate
from foveate.conformal.policy import AbstentionPolicy
from foveate.conformal.risk_control import SelectiveCalibration
from foveate.conformal.split import ConformalCalibration
from foveate.databases import as_url, describe, quick_check, read_only_connector, sqlite_file
from foveate.errors import CalibrationStoreError

CalibrationMethod = Literal["lac", "aps", "raps", "crc", "ltt", "learned"]
METHODS: tuple[str, ...] = get_args(CalibrationMethod)
CalibrationResult = ConformalCalibration | SelectiveCalibration | AbstentionPolicy | AnswerGate


def template_hash(template: str) -> str:
    """SHA-256 (hex) of a prompt template's text, as UTF-8."""
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the calibration tables (separate from the memory's)."""


class CalibrationRow(Base):
    __tablename__ = "calibrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(512), index=True)
    template_hash: Mapped[str] = mapped_column(String(64), index=True)
    alpha: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)  # NULL: not finite
    threshold_text: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    result_json: Mapped[str] = mapped_column(Text)


class CalibrationRecord(BaseModel):
    """One stored calibration; ``id`` is set once it is saved."""

    model_config = ConfigDict(frozen=True)
    id: int | None = None
    model_id: str
    template_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    alpha: float = Field(gt=0.0, lt=1.0)
    method: CalibrationMethod
    n: int = Field(ge=1)
    threshold: float
    created_at: datetime = Field(default_factory=_utcnow)
    result_json: str = Field(description="the full pydantic result as JSON (Infinity allowed)")

    @classmethod
    def from_result(
        cls,
        result: CalibrationResult,
        *,
        model_id: str,
        template: str | None = None,
        template_sha256: str | None = None,
    ) -> CalibrationRecord:
        """A record of a calibration result; give the prompt ``template`` text or its ``template_sha256``."""
        if (template is None) == (template_sha256 is None):
            raise ValueError("give exactly one of template and template_sha256")
        digest = template_sha256 if template_sha256 is not None else template_hash(cast(str, template))
        method: str
        if isinstance(result, ConformalCalibration):
            method, alpha, n, threshold = result.score.method, result.alpha, result.n, result.threshold
        elif isinstance(result, SelectiveCalibration):
            method, alpha, n, threshold = result.method, result.alpha, result.n, result.threshold
        elif isinstance(result, AbstentionPolicy):
            sel = result.selection
            method, alpha, n, threshold = "learned", sel.alpha, result.calibrated_on, sel.threshold
        elif isinstance(result, AnswerGate):
            main = result.options if result.options is not None else result.free_text
            method, alpha = result.method, result.alpha
            n = max(1, result.calibrated_on.get("options", 0) + result.calibrated_on.get("free_text", 0))
            threshold = main.threshold if main is not None else math.inf
        else:
            raise TypeError(f"not a calibration result: {type(result).__name__}")
        # model_dump keeps infinities as floats; json writes them as Infinity (pydantic's JSON mode
        # would turn them into null unless every nested model opts in)
        payload = json.dumps({"type": type(result).__name__, "value": result.model_dump(mode="python")})
        return cls(
            model_id=model_id,
            template_hash=digest,
            alpha=alpha,
            method=cast(CalibrationMethod, method),
            n=n,
            threshold=threshold,
            result_json=payload,
        )

    def result(self) -> CalibrationResult:
        """The stored pydantic result, rebuilt."""
        data = json.loads(self.result_json)
        kinds: dict[str, type[BaseModel]] = {
            "ConformalCalibration": ConformalCalibration,
            "SelectiveCalibration": SelectiveCalibration,
            "AbstentionPolicy": AbstentionPolicy,
            "AnswerGate": AnswerGate,
        }
        kind = kinds.get(data.get("type", ""))
        if kind is None:
            raise CalibrationStoreError(f"calibration record {self.id} holds an unknown result type")
        return cast(CalibrationResult, kind.model_validate(data["value"]))

    @classmethod
    def from_row(cls, row: CalibrationRow) -> CalibrationRecord:
        created = row.created_at
        if created.tzinfo is None:  # SQLite hands back naive datetimes; we store UTC
            created = created.replace(tzinfo=timezone.utc)
        return cls(
            id=row.id,
            model_id=row.model_id,
            template_hash=row.template_hash,
            alpha=row.alpha,
            method=cast(CalibrationMethod, row.method),
            n=row.n,
            threshold=float(row.threshold_text),
            created_at=created,
            result_json=row.result_json,
        )


class CalibrationStore:
    """Calibration records in a database: a SQLite file path (created if missing) or a SQLAlchemy URL.

    ``create=False`` refuses a SQLite file that does not exist yet instead of creating it. ``read_only``
    (which implies it) writes nothing, not even the tables: for reading gates from a read-only place.
    """

    def __init__(self, target: str | Path | URL, *, create: bool = True, read_only: bool = False) -> None:
        self.url = as_url(target)
        backend = self.url.get_backend_name()
        kwargs: dict[str, Any] = {}
        self.path: Path | None = sqlite_file(self.url)
        self.name = describe(self.url)
        if self.path is not None:
            quick_check(self.path, "calibration database", CalibrationStoreError)
            if not self.path.exists() or self.path.stat().st_size == 0:
                if not create or read_only:
                    raise CalibrationStoreError(f"no calibration database at {self.path}")
                self.path.parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
            if read_only:
                kwargs = {"creator": read_only_connector(self.path)}
        else:
            if backend == "sqlite":
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        try:
            self.engine = create_engine(self.url, **kwargs)
            if not read_only:
                Base.metadata.create_all(self.engine)
            try:
                self._empty = read_only and not self._holds_calibrations()
            except CalibrationStoreError:  # not ours: let go of the file (an open one keeps a mount busy)
                self.engine.dispose()
                raise
        except (SQLAlchemyError, ImportError) as exc:
            raise CalibrationStoreError(f"cannot open calibration database {self.name}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __enter__(self) -> CalibrationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    def save(self, record: CalibrationRecord) -> CalibrationRecord:
        """Store a record (its ``id``, if any, is ignored); returns it with the new ``id``."""
        value = float(record.threshold)
        if math.isnan(value):
            raise CalibrationStoreError("a calibration threshold cannot be NaN")
        row = CalibrationRow(
            model_id=record.model_id,
            template_hash=record.template_hash,
            alpha=record.alpha,
            method=record.method,
            n=record.n,
            threshold=value if math.isfinite(value) else None,
            threshold_text=repr(value),
            created_at=record.created_at,
            result_json=record.result_json,
        )
        try:
            with self._sessions() as session, session.begin():
                session.add(row)
                session.flush()
                return CalibrationRecord.from_row(row)
        except SQLAlchemyError as exc:
            raise CalibrationStoreError(f"cannot write to calibration database {self.name}: {exc}") from exc

    def latest(
        self, model_id: str, template_sha256: str, alpha: float, method: str
    ) -> CalibrationRecord | None:
        """The newest record for this model, prompt template hash, alpha and method, or ``None``."""
        query = (
            select(CalibrationRow)
            .where(
                CalibrationRow.model_id == model_id,
                CalibrationRow.template_hash == template_sha256,
                CalibrationRow.method == method,
                # alpha is a decimal the user typed; compare with room for binary rounding
                CalibrationRow.alpha.between(alpha - 1e-12, alpha + 1e-12),
            )
            .order_by(CalibrationRow.created_at.desc(), CalibrationRow.id.desc())
            .limit(1)
        )
        rows = self._rows(query)
        return rows[0] if rows else None

    def latest_gates(
        self, alpha: float, method: str, *, key_sha256: str | None = None, limit: int = 20
    ) -> builtins.list[CalibrationRecord]:
        """The newest ``AnswerGate`` records at this alpha and method, newest first: those made for the key
        with this ``GateKey.sha256`` (whatever the model's folder is called), or, without one, whatever they
        were made for (to say how the nearest one differs when none matches)."""
        query = (
            select(CalibrationRow)
            .where(
                CalibrationRow.method == method,
                CalibrationRow.alpha.between(alpha - 1e-12, alpha + 1e-12),
                CalibrationRow.result_json.like('{"type": "AnswerGate"%'),
            )
            .order_by(CalibrationRow.created_at.desc(), CalibrationRow.id.desc())
            .limit(limit)
        )
        if key_sha256 is not None:
            query = query.where(CalibrationRow.template_hash == key_sha256)
        return self._rows(query)

    def list(self, model_id: str | None = None) -> builtins.list[CalibrationRecord]:
        """Every record (of one model, if given), oldest first."""
        query = select(CalibrationRow).order_by(CalibrationRow.id)
        if model_id is not None:
            query = query.where(CalibrationRow.model_id == model_id)
        return self._rows(query)

    def _holds_calibrations(self) -> bool:
        """Whether a database opened read-only has foveate's table; one with only other tables is refused
        (it is not a calibration database), one with none holds no calibration yet."""
        tables = set(inspect(self.engine).get_table_names())
        if CalibrationRow.__tablename__ in tables:
            return True
        if tables:
            raise CalibrationStoreError(
                f"{self.name} holds other tables ({', '.join(sorted(tables)[:5])}), not calibrations"
            )
        return False

    def _rows(self, query: Any) -> builtins.list[CalibrationRecord]:
        """The records a query selects; an unreadable database (not foveate's, damaged) is one error."""
        if self._empty:
            return []
        try:
            with self._sessions() as session:
                return [CalibrationRecord.from_row(r) for r in session.scalars(query)]
        except SQLAlchemyError as exc:
            raise CalibrationStoreError(f"cannot read calibration database {self.name}: {exc}") from exc
