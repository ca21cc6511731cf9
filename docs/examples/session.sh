#!/usr/bin/env bash
# A whole session with DrQueue's HTTP API in curl and jq: submit a job, watch it until it is
# done, read a frame's log, and kill a second job.  DRQUEUE_MASTER (http://host:7680) and
# DRQUEUE_TOKEN (`drqueue token create`) say which master and who you are.
set -euo pipefail
api="$DRQUEUE_MASTER/api/v1"
auth="Authorization: Bearer $DRQUEUE_TOKEN"
call() {  # METHOD PATH [JSON BODY]: the answer; an error prints the master's one line and fails
  local answer
  # The header is read from a file descriptor: the token never shows in `ps`.
  if answer=$(curl -sS --fail-with-body -X "$1" -H @<(echo "$auth") \
    -H 'Content-Type: application/json' ${3:+--data "$3"} "$api$2"); then
    printf '%s\n' "$answer"
  else
    echo "error: $(jq -r .detail <<<"$answer" 2>/dev/null || echo "$answer")" >&2
    return 1
  fi
}

# Submit 4 frames, 2 per task; the answer is {"id": ..., "tasks": 2}.
job=$(call POST /jobs '{"renderer": "shell", "start": 1, "end": 4, "block_size": 2,
                        "params": {"cmd": "echo rendering frame {frame}"}}' | jq -r .id)
echo "submitted job $job"

# Watch: print its events as they come (ids increase: ask for those after the last one seen)
# until the job has ended (finished, error, cancelled) or was stopped.
since=0
while :; do
  status=$(call GET "/jobs/$job" | jq -r .status)
  events=$(call GET "/jobs/$job/events?since=$since")
  echo "$events" | jq -r '.[] | "  \(.kind): \(.message)"'
  since=$(echo "$events" | jq --argjson since "$since" 'map(.id) | max // $since')
  case $status in finished | error | cancelled | stopped) break ;; esac
  sleep 1
done
call GET "/jobs/$job" | jq -r '"job \(.id) \(.status): \(.counts.finished)/\(.counts.total) tasks"'

# The log of the task that rendered frame 3 (plain text).
call GET "/jobs/$job/log?frame=3"

# A second, long job: wait until a task runs, then kill it (its running tasks are stopped).
second=$(call POST /jobs '{"renderer": "shell", "start": 1, "end": 100,
                           "params": {"cmd": "sleep 60"}}' | jq -r .id)
until [ "$(call GET "/jobs/$second" | jq .counts.running)" -gt 0 ]; do sleep 1; done
call POST "/jobs/$second/kill" | jq -r '"killed job \(.id): \(.status)"'
