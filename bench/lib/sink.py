"""SMTP sink for bench/relay: accepts every message (250 to everything,
PIPELINING advertised) and appends `<wall-clock time> <X-Bench-Id>` per
message to LOG (`-` for messages without that header).

  python3 bench/lib/sink.py PORT LOG [--reuse-port] [--defer]

--reuse-port: bind with SO_REUSEPORT, so several sink processes (each with
its own LOG) share the port and the kernel spreads connections over them
(benchlib.Sink(workers=N)).
--defer: a sink that defers everything: `421 4.3.2` as its banner, then
closes (bench/queue: every delivery attempt fails temporarily, nothing
leaves the queue).
"""
import asyncio
import sys
import time


async def deferring(reader, writer, log):
    writer.write(b"421 4.3.2 sink.bench.example deferring everything\r\n")
    try:
        await writer.drain()
    except OSError:
        pass
    log.write(f"{time.time():.6f} deferred\n")
    writer.close()


async def session(reader, writer, log):
    writer.write(b"220 sink.bench.example ESMTP\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250-sink.bench.example\r\n250-PIPELINING\r\n"
                             b"250-8BITMIME\r\n250 SIZE 100000000\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go\r\n")
                await writer.drain()
                data = b""
                while data != b".\r\n" and not data.endswith(b"\r\n.\r\n"):
                    data += await reader.readuntil(b".\r\n")
                bench_id = "-"
                head = data[:data.find(b"\r\n\r\n") + 2]
                k = head.lower().find(b"x-bench-id:")
                if k >= 0:
                    bench_id = head[k + 11:head.find(b"\r\n", k)].strip().decode(
                        errors="replace")
                log.write(f"{time.time():.6f} {bench_id}\n")
                log.flush()
                writer.write(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 2.0.0 ok\r\n")
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    reuse = "--reuse-port" in sys.argv[3:]
    handler = deferring if "--defer" in sys.argv[3:] else session
    with open(path, "a") as log:
        server = await asyncio.start_server(
            lambda r, w: handler(r, w, log), "127.0.0.1", port, backlog=1024,
            limit=64 * 1024 * 1024, reuse_port=reuse or None)
        with open(path + ".ready", "w"):
            pass  # listening: benchlib.Sink waits for this file
        async with server:
            await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
