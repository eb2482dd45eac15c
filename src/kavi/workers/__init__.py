"""Work spread over machines: a job queue in the ledger's own PostgreSQL database (procrastinate), workers
that run kavi's stages from any machine that can reach it, and `kavi wait` to follow a job."""
