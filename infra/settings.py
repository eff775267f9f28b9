"""Settings, read from the environment (prefix REEL_) or a .env file: the one source of defaults.

Embedded defaults run everything on one machine: a local folder store, a
Dask LocalCluster and Prefect's ephemeral API. A studio sets the S3 and Dask
variables (and PREFECT_API_URL) and runs the same code.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any, Literal, cast

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from infra.sources import HOST_ENTRY_PATTERN
from infra.storage import StoreConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REEL_", env_file=".env", extra="ignore")

    store: str = Field("./reel-data", description="object store: a local folder, file:///abs/path, or s3://bucket/prefix")
    s3_endpoint: str | None = Field(None, description="S3 endpoint host:port (for s3:// stores)")
    s3_access_key: SecretStr | None = Field(None, description="S3 access key")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret key")
    s3_access_key_block: str | None = Field(None, description="name of a Prefect Secret block holding the S3 "
                                                              "access key (used when REEL_S3_ACCESS_KEY is unset)")
    s3_secret_key_block: str | None = Field(None, description="name of a Prefect Secret block holding the S3 "
                                                              "secret key (used when REEL_S3_SECRET_KEY is unset)")
    s3_secure: bool = Field(False, description="use HTTPS for the S3 endpoint")
    s3_region: str | None = Field(None, description="S3 region, if the server needs one")
    s3_create_bucket: bool = Field(False, description="create the bucket when it is missing")

    dask_address: str | None = Field(None, description="Dask scheduler address; empty starts a LocalCluster")
    dask_workers: int = Field(2, ge=1, le=256, description="LocalCluster worker processes")
    dask_threads_per_worker: int = Field(1, ge=1, le=64, description="threads per LocalCluster worker")

    chunk_frames: int = Field(48, ge=4, le=10_000, description="frames per mezzanine chunk")
    mezzanine: Literal["auto", "ffv1"] = Field("auto", description="auto: the mezzanine chunks of an intra-only "
                                                  "FFV1 or ProRes source are its own packets, copied; ffv1: always "
                                                  "encoded as lossless FFV1")
    piece_frames: int = Field(48, ge=4, le=10_000, description="most output frames restored by one task (memory bound)")
    probe_timeout_s: float = Field(60.0, gt=0, description="time limit for probing an untrusted source")
    probe_max_memory_mb: int = Field(4096, ge=64, description="memory the probe's child process may use beyond "
                                                             "its start (decompression bombs fail, not the machine)")
    ocio_config: str | None = Field(None, description="OpenColorIO config for log and linear film scans (a file or "
                                                      "an ocio:// built-in config); default: Reel's built-in Cineon "
                                                      "conversion (infra/scan_colour.py)")
    ocio_scan_space: str | None = Field(None, description="colour space of log scans in REEL_OCIO_CONFIG")
    ocio_working_space: str | None = Field(None, description="the working space (BT.709 R'G'B') in REEL_OCIO_CONFIG")
    max_source_pixels: int = Field(8192 * 4352, ge=64 * 64, description="largest declared frame size (width x "
                                                                        "height) accepted, checked before decoding")

    # Catalogue operations and review (flows.catalogue, flows.serve, the review gate).
    catalogue: str = Field("catalogue/titles.csv", description="titles file (CSV or Parquet) the sweep and "
                                                               "`reel catalogue` read")
    catalogue_max_bytes: int = Field(32 * 2**20, ge=1, description="largest catalogue file read (bytes), "
                                                                  "checked before parsing")
    catalogue_max_rows: int = Field(100_000, ge=1, description="most titles (rows) a catalogue may hold")
    recipe_max_bytes: int = Field(2**20, ge=1, description="largest recipe file read (bytes), checked before "
                                                           "parsing")
    sweep_cron: str = Field("0 * * * *", description="cron schedule of the catalogue-sweep deployment (UTC)")
    sweep_max_concurrent: int = Field(2, ge=1, le=1000, description="most restore-title runs active at once "
                                                                    "(running or paused for review)")
    temp_max_age_s: float = Field(24 * 3600.0, gt=0, description="the sweep deletes temp files of interrupted "
                                                                 "writes in a local store once this old")
    sweep_retry_base_s: float = Field(900.0, ge=0, description="a failed title is retried by the sweep this "
                                                               "long after its failed run, doubling with each "
                                                               "failure in a row (at most a day)")
    sweep_give_up_after: int = Field(5, ge=1, description="after this many failed runs in a row the sweep "
                                                          "stops starting the title until a person runs it")
    review_timeout_s: int = Field(7 * 24 * 3600, ge=10, description="how long a run waits paused for a "
                                                                   "review; then it fails cleanly, publishing "
                                                                   "nothing (a retry pauses again at once)")
    review_poll_s: int = Field(5, ge=1, le=600, description="how often a paused run checks for the answer")
    handoff_dir: str = Field("reel-handoff", description="where a run's review writes the shots it sends to an "
                                                         "artist (one folder per title and handoff)")
    public_url: str | None = Field(None, description="base URL of `reel serve`'s picture page, used for QC "
                                                     "links in Prefect artifacts (default http://127.0.0.1:PORT)")

    # Sources policy (infra.sources): what a title's source may be.
    source_roots: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="folders local sources must lie under (comma-separated or a JSON list; relative ones are "
                    "taken from the working directory). Symlinks and '..' are resolved before the check. "
                    "Empty (the default): any local regular file the process can read, as on a personal "
                    "machine; set it wherever other people can start restores.",
    )
    allowed_http_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="hosts http(s):// sources may be fetched from, as host (default port) or host:port "
                    "(comma-separated or a JSON list). Empty (the default): no http(s) source is fetched.",
    )
    source_max_bytes: int = Field(2 * 1024**4, ge=1, description="largest source downloaded from s3:// or http(s)://")

    @field_validator("source_roots", "allowed_http_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """Accept a JSON list or a comma-separated string (as environment variables give it)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("source_roots")
    @classmethod
    def _roots(cls, value: list[str]) -> list[str]:
        roots = [r.strip() for r in value if r.strip()]
        if any("\x00" in r for r in roots):
            raise ValueError("source_roots: a root contains NUL")
        return roots

    @field_validator("allowed_http_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        hosts = [h.strip().lower() for h in value if h.strip()]
        bad = [h for h in hosts if not HOST_ENTRY_PATTERN.fullmatch(h)]
        if bad:
            raise ValueError(f"allowed_http_hosts: {bad[0]!r} is not host or host:port (no scheme, path or user)")
        return hosts

    def store_config(self) -> StoreConfig:
        return StoreConfig(
            url=self.store,
            s3_endpoint=self.s3_endpoint,
            s3_access_key=self.s3_access_key,
            s3_secret_key=self.s3_secret_key,
            s3_secure=self.s3_secure,
            s3_region=self.s3_region,
            create_bucket=self.s3_create_bucket,
        )


def load_settings() -> Settings:
    """Read the settings now (environment and .env); S3 keys named by Prefect Secret blocks are loaded
    from the Prefect API (never passed as flow parameters, so they stay out of run records)."""
    settings = Settings()
    update = {}
    for field in ("s3_access_key", "s3_secret_key"):
        block = getattr(settings, f"{field}_block")
        if getattr(settings, field) is None and block:
            update[field] = SecretStr(_secret_block(block))
    return settings.model_copy(update=update) if update else settings


@functools.lru_cache(maxsize=8)
def _secret_block(name: str) -> str:
    from prefect.blocks.system import Secret

    try:
        value = cast(Secret, Secret.load(name)).get()  # called synchronously: the block, not a coroutine
    except Exception as e:  # the message names the block, never a value
        raise ValueError(f"cannot load the Prefect Secret block {name!r}: {type(e).__name__}") from None
    if not isinstance(value, str) or not value:
        raise ValueError(f"the Prefect Secret block {name!r} does not hold a non-empty string")
    return value
