"""Runs a command in a pseudo-terminal and answers its prompts, as a person would type.

    answer_prompts.py 'Username:=alice' 'Password:=secret' -- npm login ...

npm reads credentials from a TTY only; piped stdin makes it exit early."""
import os
import pty
import select
import sys
import time

sep = sys.argv.index("--")
answers = [a.split("=", 1) for a in sys.argv[1:sep]]
cmd = sys.argv[sep + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)
seen = b""
deadline = time.time() + 120
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.5)
    if fd in r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        sys.stdout.write(chunk.decode(errors="replace"))
        sys.stdout.flush()
        if answers and answers[0][0].encode() in seen:
            prompt, answer = answers.pop(0)
            seen = seen[seen.index(prompt.encode()) + len(prompt):]
            os.write(fd, answer.encode() + b"\r")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
