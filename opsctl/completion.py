"""Shell completion scripts: commands, subcommands and the options of each (bash; zsh through
its bash compatibility)."""

from __future__ import annotations

COMMANDS = {
    "whoami": "",
    "scale": "deployment statefulset -n --namespace --replicas --dry-run",
    "delete": "pod pvc -n --namespace --dry-run",
    "rebuild": "-n --namespace --ordinal --target-replicas --strategy --allow-outage "
    "--allow-scale-down --from-snapshot --dry-run --wait --timeout",
    "rollout-restart": "deployment statefulset -n --namespace --dry-run --wait --timeout",
    "backup": "-n --namespace --ordinal --dry-run --wait --timeout",
    "job": "start get follow cancel retry list types --param --dry-run --wait --timeout",
    "approvals": "list get approve reject --status --limit --reason --wait --timeout",
    "audit": "-n --namespace --actor --action --status --since --until --limit",
    "config": "set-context use-context get-contexts",
    "completion": "bash zsh",
}
GLOBAL = (
    "-o --output --server --context --request-timeout --idempotency-key --retries --help --version"
)

BASH = """# opsctl completion (bash): eval "$(opsctl completion bash)"
_opsctl() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -o|--output|--server|--context|--request-timeout|--idempotency-key|--retries)
                ((i++)) ;;
            -*) ;;
            *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    case $prev in
        -o|--output) COMPREPLY=($(compgen -W "table json yaml" -- "$cur")); return ;;
        --strategy) COMPREPLY=($(compgen -W "scale-to-zero in-place" -- "$cur")); return ;;
        --status) COMPREPLY=($(compgen -W "pending running success failed cancelled \\
ok denied error approved rejected expired stale" -- "$cur")); return ;;
    esac
    case $cmd in
%(cases)s
        *) COMPREPLY=($(compgen -W "%(commands)s %(global)s" -- "$cur")) ;;
    esac
}
complete -F _opsctl opsctl
"""

ZSH = """#compdef opsctl
# opsctl completion (zsh): eval "$(opsctl completion zsh)"
autoload -U +X bashcompinit && bashcompinit
"""


def script(shell: str) -> str:
    """The completion script for ``shell`` (bash or zsh)."""
    cases = "\n".join(
        f'        {name}) COMPREPLY=($(compgen -W "{words} -o --output" -- "$cur")) ;;'
        for name, words in COMMANDS.items()
    )
    bash = BASH % {"cases": cases, "commands": " ".join(COMMANDS), "global": GLOBAL}
    return bash if shell == "bash" else ZSH + bash
