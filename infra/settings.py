"""Settings, read from the environment (prefix REEL_) or a .env file: the one source of defaults.

Embedded defaults run everything on one machine: a local folder store, a
Dask LocalCluster and Prefect's ephemeral API. A studio sets the S3 and Dask
variables (and PREFECT_API_URL) and runs the same code.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.storage import StoreConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REEL_", env_file=".env", extra="ignore")

    store: str = Field("./reel-data", description="object store: a local folder, file:///abs/path, or s3://bucket/prefix")
    s3_endpoint: str | None = Field(None, description="S3 endpoint host:port (for s3:// stores)")
    s3_access_key: SecretStr | None = Field(None, description="S3 access key")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret key")
    s3_secure: bool = Field(False, description="use HTTPS for the S3 endpoint")
    s3_region: str | None = Field(None, description="S3 region, if the server needs one")
    s3_create_bucket: bool = Field(False, description="create the bucket when it is missing")

    dask_address: str | None = Field(None, description="Dask scheduler address; empty starts a LocalCluster")
    dask_workers: int = Field(2, ge=1, le=256, description="LocalCluster worker processes")
    dask_threads_per_worker: int = Field(1, ge=1, le=64, description="threads per LocalCluster worker")

    chunk_frames: int = Field(48, ge=4, le=10_000, description="frames per mezzanine chunk")
    piece_frames: int = Field(48, ge=4, le=10_000, description="most output frames restored by one task (memory bound)")
    probe_timeout_s: float = Field(60.0, gt=0, description="time limit for probing an untrusted source")

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
    """Read the settings now (environment and .env)."""
    return Settings()
