#!/bin/bash
# Submit a sharded emessi run: an array of N shard tasks, then one merge job that waits for all.
#
#   RECORDINGS=/scratch/$USER/meetings WORK=/scratch/$USER/emessi-work DB=$HOME/meetings.duckdb \
#       SHARDS=8 bash docs/slurm/submit.sh
#
# WORK must be on storage every node sees. afterany: a shard that failed still lets the others be
# merged; its files are listed as failed with their cause, and the next sharded run retries them.
set -euo pipefail
: "${RECORDINGS:?folder of recordings}" "${WORK:?shared workspace folder}" "${DB:?DuckDB file to load into}"
SHARDS=${SHARDS:-8}
HERE=$(cd "$(dirname "$0")" && pwd)
export RECORDINGS WORK DB SHARDS PROFILE=${PROFILE:-default}
array=$(sbatch --parsable --array=1-"$SHARDS" --export=ALL "$HERE/emessi-shard.sbatch")
sbatch --dependency=afterany:"$array" --export=ALL "$HERE/emessi-merge.sbatch"
