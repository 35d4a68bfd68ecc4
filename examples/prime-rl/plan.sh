#!/usr/bin/env bash
# The commands that rent Prime Intellect machines with its own CLI (`prime`, 0.18.0) and
# train Hegelion's verifiers environment on them with prime-rl. This script only PRINTS
# them, in order, with your values filled in: it runs nothing, rents nothing, costs
# nothing. Run each printed line yourself where its comment says.
#
#   bash examples/prime-rl/plan.sh                 # several nodes: a Slurm cluster
#   bash examples/prime-rl/plan.sh --single-node   # one 8-GPU pod
#
# Values (environment variables): CLUSTER_ID (your Slurm deployment, from
# `prime factory slurm list`), NODES (3: two train, one inference, as multi-node.toml
# says), SHARED (a directory every node sees), GPU_TYPE (H100_80GB), AVAILABILITY_ID and
# POD_ID (from `prime availability list` and `prime pods create`), HEGELION_REPO (where
# you clone Hegelion from).
set -euo pipefail

CLUSTER_ID=${CLUSTER_ID:-CLUSTER_ID}
NODES=${NODES:-3}
GPU_TYPE=${GPU_TYPE:-H100_80GB}
HEGELION_REPO=${HEGELION_REPO:-HEGELION_REPO_URL}
SHARED=${SHARED:-/shared}
POD_ID=${POD_ID:-POD_ID}
AVAILABILITY_ID=${AVAILABILITY_ID:-AVAILABILITY_ID}

common_head() {
    cat <<EOF
# --- here, once: log in (an API key from the dashboard; stored in ~/.prime)
prime login
EOF
}

train_steps() {  # $1: a directory every node sees
    cat <<EOF
git clone https://github.com/PrimeIntellect-ai/prime-rl $1/prime-rl
git clone ${HEGELION_REPO} $1/hegelion
cd $1/prime-rl && uv sync --all-extras
cd $1/prime-rl && uv pip show verifiers   # must say 0.4.0, the version hegelion-verifiers pins
cd $1/prime-rl && uv pip install -e $1/hegelion -e $1/hegelion/plugins/hegelion-simplex -e $1/hegelion/plugins/hegelion-verifiers
EOF
}

if [[ "${1:-}" == "--single-node" ]]; then
    common_head
    cat <<EOF
# --- here: rent one pod with two GPUs (rl.toml: one trains, one serves)
prime availability list --gpu-type ${GPU_TYPE} --gpu-count 2
prime pods create --id ${AVAILABILITY_ID} --name hegelion-rl --yes
prime pods status ${POD_ID}
prime pods ssh ${POD_ID}
# --- on the pod
EOF
    train_steps "\$HOME"
    cat <<EOF
cd \$HOME/prime-rl && uv run rl @ \$HOME/hegelion/examples/prime-rl/rl.toml
# --- here, when it is done: stop paying
prime pods terminate ${POD_ID} --yes
EOF
else
    common_head
    cat <<EOF
# --- here: grow your team's Slurm cluster to ${NODES} nodes
prime factory slurm list
prime factory slurm resize ${CLUSTER_ID} --nodes ${NODES} --wait --yes
prime factory slurm get ${CLUSTER_ID}
# --- on the cluster's login node (its address is in 'prime factory slurm get')
EOF
    train_steps "${SHARED}"
    cat <<EOF
cd ${SHARED}/prime-rl && uv run rl @ ${SHARED}/hegelion/examples/prime-rl/rl.toml @ ${SHARED}/hegelion/examples/prime-rl/multi-node.toml --dry-run
cd ${SHARED}/prime-rl && uv run rl @ ${SHARED}/hegelion/examples/prime-rl/rl.toml @ ${SHARED}/hegelion/examples/prime-rl/multi-node.toml
# --- here, when it is done: shrink the cluster back
prime factory slurm resize ${CLUSTER_ID} --nodes 1 --wait --yes
EOF
fi
