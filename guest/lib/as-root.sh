# Sourced by the guest scripts. Runs a command as root: directly when we are root, through
# non-interactive sudo where there is one, else fails with the caller's die().
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root for: $* (run as root or install the packages yourself)"
    fi
}
