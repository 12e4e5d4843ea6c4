# The walk-throughs' helpers: `source docs/helpers.sh` at the repository's root, with the
# exports `make run` prints (API, BUYER, MERCHANT, ADMIN) pasted.
H='Content-Type: application/json'
ADDR='"address":{"name":"Li Lei","phone":"+86 138 0000 0000","line1":"1 Nanjing Rd","city":"Shanghai","country":"CN"}'

# show '<claim>': print a JSON answer and check a claim about it (`d` is the answer)
show() {
  python3 -c '
import json, sys
d = json.load(sys.stdin)
print(json.dumps(d, ensure_ascii=False, indent=1)[:1500])
assert eval(sys.argv[1]), "not so: " + sys.argv[1]' "$1"
}

# id_of: an answer's id
id_of() { python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'; }

# wait_for <url> '<claim>' [seconds]: ask (as the buyer) until the claim holds, up to 10 s
# (or the seconds given), for news that arrives through a callback or a timer
wait_for() {
  for _ in $(seq $((${3:-10} * 5))); do
    curl -s "$1" -H "Authorization: Bearer $BUYER" | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if eval(sys.argv[1]) else 1)' "$2" && return 0
    sleep 0.2
  done
  echo "still not so: $2" >&2
  return 1
}
