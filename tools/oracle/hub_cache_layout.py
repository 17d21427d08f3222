#!/usr/bin/env python3
"""Golden Hugging Face cache layout, as written by huggingface_hub's snapshot_download.

Serves the repositories of testdata/hub/fixture.json from a local fake Hub (the revision and tree
APIs, HEAD/GET on resolve URLs with X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size, LFS files
redirected to a /cdn/ path), pulls each with snapshot_download into an empty HF_HUB_CACHE, and
writes every entry of each repository folder (blobs, snapshots, refs; not the library's own
trees/ and .locks/) with its kind, symlink target and content sha256.

Usage: python3 tools/oracle/hub_cache_layout.py testdata/hub/fixture.json testdata/hub/hf_layout.json
"""
import hashlib
import json
import os
import sys
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_fixture(path):
    with open(path) as f:
        fx = json.load(f)
    for repo in fx["repos"]:
        for c in repo["commits"]:
            for fi in c["files"]:
                fi["data"] = fi["content"].encode()
    return fx


def make_handler(fx, seen):
    repos = {(r["type"], r["id"]): r for r in fx["repos"]}
    blobs = {sha256(fi["data"]): fi for r in fx["repos"] for c in r["commits"] for fi in c["files"] if fi["lfs"]}

    def find(typ, repo_id, rev):
        repo = repos.get((typ, repo_id))
        if repo is None:
            return None
        for c in repo["commits"]:
            if rev == c["sha"] or rev in c["refs"]:
                return c
        return None

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, code, headers, body=b""):
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command == "GET" and body:
                self.wfile.write(body)

        def json(self, obj):
            body = json.dumps(obj).encode()
            self.send(200, {"Content-Type": "application/json", "Content-Length": str(len(body))}, body)

        def route(self):
            seen.append((self.command, self.path))
            url = urllib.parse.urlsplit(self.path)
            path = url.path
            if path.startswith("/cdn/"):
                fi = blobs[path[len("/cdn/"):]]
                return self.send(200, {"Content-Length": str(len(fi["data"])), "ETag": '"cdn"'}, fi["data"])
            if path.startswith("/api/"):
                typ, rest = path[len("/api/"):].split("/", 1)
                typ = typ.rstrip("s")
                for kind in ("/revision/", "/tree/"):
                    if kind in rest:
                        repo_id, rev = rest.split(kind, 1)
                        rev = urllib.parse.unquote(rev)
                        break
                else:
                    return self.send(404, {"Content-Length": "0"})
                c = find(typ, repo_id, rev)
                if c is None:
                    return self.send(404, {"X-Error-Code": "RevisionNotFound", "Content-Length": "0"})
                if kind == "/revision/":
                    return self.json({"id": repo_id, "sha": c["sha"], "siblings": [{"rfilename": fi["path"]} for fi in c["files"]]})
                entries = []
                for fi in c["files"]:
                    e = {"type": "file", "oid": git_sha1(fi["data"]), "size": len(fi["data"]), "path": fi["path"]}
                    if fi["lfs"]:
                        e["lfs"] = {"oid": sha256(fi["data"]), "size": len(fi["data"]), "pointerSize": 130}
                    entries.append(e)
                return self.json(entries)
            typ = "model"
            if path.startswith("/datasets/"):
                typ, path = "dataset", path[len("/datasets"):]
            repo_id, rest = path[1:].split("/resolve/", 1)
            rev, fname = rest.split("/", 1)
            c = find(typ, repo_id, urllib.parse.unquote(rev))
            fname = urllib.parse.unquote(fname)
            fi = next((f for f in c["files"] if f["path"] == fname), None) if c else None
            if fi is None:
                return self.send(404, {"X-Error-Code": "EntryNotFound", "Content-Length": "0"})
            h = {"X-Repo-Commit": c["sha"], "Accept-Ranges": "bytes"}
            if fi["lfs"]:
                h.update({"ETag": '"pointer"', "X-Linked-Etag": '"%s"' % sha256(fi["data"]),
                          "X-Linked-Size": str(len(fi["data"])), "Content-Length": "0",
                          # Another origin (localhost, not 127.0.0.1), as a real CDN is.
                          "Location": "http://localhost:%d/cdn/%s" % (self.server.server_port, sha256(fi["data"]))})
                return self.send(302, h)
            h.update({"ETag": '"%s"' % git_sha1(fi["data"]), "Content-Length": str(len(fi["data"]))})
            return self.send(200, h, fi["data"])

        do_GET = route
        do_HEAD = route

    return Handler


def walk(repo_dir):
    out = []
    for root, dirs, files in os.walk(repo_dir):
        rel_root = os.path.relpath(root, repo_dir)
        if rel_root.split(os.sep)[0] == "trees":
            continue
        for name in sorted(dirs + files):
            p = os.path.join(root, name)
            rel = os.path.relpath(p, repo_dir).replace(os.sep, "/")
            if rel == "trees":
                continue
            if os.path.islink(p):
                out.append({"path": rel, "kind": "link", "target": os.readlink(p)})
            elif os.path.isdir(p):
                out.append({"path": rel, "kind": "dir"})
            else:
                with open(p, "rb") as f:
                    out.append({"path": rel, "kind": "file", "sha256": sha256(f.read())})
    return sorted(out, key=lambda e: e["path"])


def main(fixture_path, out_path):
    fx = load_fixture(fixture_path)
    seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fx, seen))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as cache:
        os.environ.update({"HF_ENDPOINT": "http://127.0.0.1:%d" % server.server_port, "HF_HUB_CACHE": cache,
                           "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
        os.environ.pop("HF_TOKEN", None)
        import huggingface_hub
        from huggingface_hub import snapshot_download

        golden = {"huggingface_hub": huggingface_hub.__version__, "repos": []}
        for repo in fx["repos"]:
            for rev in repo["pull"]:
                snapshot_download(repo["id"], repo_type=repo["type"], revision=rev, token=False)
            folder = "%ss--%s" % (repo["type"], repo["id"].replace("/", "--"))
            golden["repos"].append({"folder": folder, "entries": walk(os.path.join(cache, folder))})
    server.shutdown()
    with open(out_path, "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print("requests:", *seen, sep="\n  ", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
