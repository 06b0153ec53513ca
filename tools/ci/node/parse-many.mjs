// gitlab-ci-local's own command line, run once per request in one Node process (issue 22): starting Node and loading
// gitlab-ci-local's modules is most of a parse's second, and the test suite parses about twenty pipelines.
//
// Started as `node parse-many.mjs <gitlab-ci-local's src/index.js>`. Each stdin line is a JSON request {"cwd": <project>, "args": [<gitlab-ci-local arguments>]}; each stdout line the
// JSON answer {"code": <exit code>, "stdout": ..., "stderr": ...}, what `cd <project>; node src/index.js <args>`
// exits with and writes. The CLI's index.js is evaluated afresh per request (a new module URL: its yargs parser,
// its options and its handler run exactly as from the shell); the modules it imports are loaded once and shared.
// Their one memo of a project's files is keyed by the project's path and dropped before each request, so a
// project parsed twice is read afresh. Requests run one at a time.
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const [node, , cliPath] = process.argv;
const CLI = pathToFileURL(cliPath);
// The instances index.js imports (one module per URL).
const { ParserIncludes } = await import(new URL("parser-includes.js", CLI).href);
const { Utils } = await import(new URL("utils.js", CLI).href);
const answer = process.stdout.write.bind(process.stdout);
// Each evaluation of index.js adds its signal handlers; without this Node would warn (on stderr) from the 11th on.
process.setMaxListeners(0);

let current = null; // the request being answered: what the CLI writes goes to it, nothing after it exited
process.stdout.write = (chunk) => { if (current) current.stdout += chunk; return true; };
process.stderr.write = (chunk) => { if (current) current.stderr += chunk; return true; };
process.exit = (code) => { if (current) current.exited(code ?? 0); };

let count = 0;
for await (const line of createInterface({ input: process.stdin })) {
    const { cwd, args } = JSON.parse(line);
    const request = { stdout: "", stderr: "" };
    const exited = new Promise((resolve) => { request.exited = resolve; });
    current = request;
    process.chdir(cwd);
    process.argv = [node, cliPath, ...args];
    ParserIncludes.memoLocalRepoFiles = freshMemo();
    await import(`${CLI.href}?request=${++count}`);
    const code = await exited;
    current = null;
    answer(JSON.stringify({ code, stdout: request.stdout, stderr: request.stderr }) + "\n");
}

// ParserIncludes.memoLocalRepoFiles as 4.64.1 defines it (a path -> its git-tracked files), with an empty cache.
function freshMemo() {
    const cache = new Map();
    return async (path) => {
        if (!cache.has(path)) cache.set(path, (await Utils.getTrackedFiles(path)).map((p) => `${path}/${p}`));
        return cache.get(path);
    };
}
