"""Operations: one place per job between the front ends and the pipelines.

Each operation takes a typed request and returns a typed result; it alone opens the repository,
takes the lock (`session.operation`), writes the audit entry on success and failure, runs the
verifier (`verification`) and lets errors surface as `DrbdBackupError`s that `errors.describe`
turns into (exit code, one line). Front ends (cli, service) parse, call and render.

- `backup`       file/device and LINSTOR backups (snapshots, lineage, plan, pipeline, record)
- `restore`      restore to a file, a device or a new LINSTOR resource
- `maintenance`  init, list, check, prune, report
- `verification` the independent verifier, run as its own process
"""
