#!/usr/bin/env bash
# Judge a pull request with the tool of its base commit: validate.yml runs this from the base checkout, and
# tests/test_trust_workflow.py runs it the same way on a hostile PR in a real git repository.
#
#   validate-pr.sh TRUSTED_DIR PR_DIR BASE_SHA OUT_DIR
#
# TRUSTED_DIR: the base commit, whose tool is already installed (non-editable) into the `python` on PATH.
# PR_DIR: the PR's head, a git checkout with history back to BASE_SHA. Read as files; nothing in it is installed,
#   imported or run outside the validator's sandbox.
# OUT_DIR: receives report.md and exit-code (0 valid, 1 invalid, 2 usage or internal error). Outside PR_DIR.
# Environment: PR_AUTHOR (the PR author's login), AUTHOR_ASSOCIATION (OWNER and MEMBER get the maintainers' policy).
#
# Exits 0 once exit-code and report.md are written, whatever the verdict, so the report can be uploaded before the
# job fails; 2 if it could not judge at all.
set -euo pipefail

die() { echo "::error::validate-pr.sh: $*" >&2; exit 2; }

[ "$#" -eq 4 ] || die "usage: validate-pr.sh TRUSTED_DIR PR_DIR BASE_SHA OUT_DIR"
[[ "$3" =~ ^[0-9a-f]{40}$ ]] || die "BASE_SHA must be 40 lowercase hex characters"
trusted="$(realpath -e -- "$1")" || die "no trusted checkout at $1"
pr="$(realpath -e -- "$2")" || die "no PR checkout at $2"
base="$3"
out="$(realpath -m -- "$4")"
case "$out/" in "$pr"/*) die "OUT_DIR must be outside the PR checkout (git would count the report as a change)" ;; esac
mkdir -p "$out"
rm -f "$out/report.md" "$out/exit-code"

# Nothing from the PR tree may reach Python's import path: console scripts never add the working directory, and these
# would (PYTHONPATH) or could (-m and -c add the working directory unless PYTHONSAFEPATH is set).
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONUSERBASE PYTHONINSPECT
export PYTHONSAFEPATH=1 PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1

# A tripwire, from a neutral folder: the judge's packages must be the installed ones, not the PR's copy.
judge="$(cd "$out" && python -c 'import os, speedrun, validator
print(os.path.realpath(os.path.dirname(validator.__file__)))')" || die "the tool is not installed (pip install ./trusted)"
case "$judge/" in "$pr"/*) die "the validator would be imported from the PR checkout ($judge)" ;; esac
echo "judging with $judge (base $base; tool from $trusted)"

git -C "$pr" cat-file -e "$base^{commit}" 2>/dev/null || die "the PR checkout does not have the base commit $base"

args=(validate --changed --base "$base" --format markdown --output "$out/report.md")
if [ -n "${PR_AUTHOR:-}" ]; then
  args+=(--pr-author "$PR_AUTHOR")
fi
case "${AUTHOR_ASSOCIATION:-}" in
  OWNER | MEMBER) args+=(--maintainer) ;;
esac

# Submitted strings end up in the log (run names, messages): stop the runner from reading workflow commands in it.
stop="$(python -c 'import secrets; print(secrets.token_hex(16))')"
echo "::stop-commands::$stop"
echo "running: speedrun ${args[*]}"
set +e
# The job summary gets the report once, from the workflow, whatever the CLI does with this variable.
(cd "$pr" && env -u GITHUB_STEP_SUMMARY speedrun "${args[@]}")
code=$?
set -e
echo "::$stop::"

echo "$code" > "$out/exit-code"
if [ ! -s "$out/report.md" ]; then
  printf '<!-- speedrun-report -->\n## Speedrun validation\n\n**error**: the validator exited with code %s before writing a report; see the workflow log.\n' "$code" > "$out/report.md"
fi
echo "speedrun validate exited with $code"
