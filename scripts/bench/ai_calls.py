"""Sends N chat calls (URL KEY MODEL N THREADS [stream]) over one keep-alive connection per thread."""
import http.client, json, sys, threading, time, urllib.parse

url, key, model, n, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
stream = len(sys.argv) > 6 and sys.argv[6] == "stream"
u = urllib.parse.urlparse(url)
body = json.dumps({"model": model, "max_tokens": 16, "stream": stream,
                   "messages": [{"role": "user", "content": "Say something about GPUs"}]})
headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
errors = []

def worker(count):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    for _ in range(count):
        c.request("POST", "/v1/chat/completions", body, headers)
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            errors.append((r.status, data[:200]))
            return

t = time.time()
ts = [threading.Thread(target=worker, args=(n // threads,)) for _ in range(threads)]
[x.start() for x in ts]
[x.join() for x in ts]
print(f"{n} calls in {time.time() - t:.2f}s errors={len(errors)} {errors[:1]}")
