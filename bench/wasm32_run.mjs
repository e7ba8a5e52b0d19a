// The MicroPython WebAssembly port (a 32-bit MicroPython) run by node, for bench/wasm32.py:
//
//   node wasm32_run.mjs PACKAGE_DIR FLASH_DIR HEAP MODULE [ARG...]
//
// copies FLASH_DIR into the interpreter's in-memory filesystem as /flash, makes it the current
// directory and the first place imports look, sets sys.argv to [MODULE, ARG...] and imports
// MODULE (as `micropython -m MODULE ARG...` runs it); if MODULE leaves a generator in its RUN, it
// is resumed to its end, one call into the interpreter for each step (the port collects garbage
// only between such calls). HEAP is the interpreter's first heap in
// bytes; the port adds heap when it runs out, so it measures but does not cap. What MODULE prints
// goes to stdout; an uncaught exception to stderr, and the exit status is then 1.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [pkg, flash, heap, module, ...args] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(join(pkg, "micropython.mjs")).href);

const mp = await loadMicroPython({
  heapsize: parseInt(heap, 10),
  pystack: 16384, // the probe's deepest request nests 13 levels of CBOR decoding
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

function copy(from, to) {
  mp.FS.mkdir(to);
  for (const name of readdirSync(from)) {
    const src = join(from, name);
    if (statSync(src).isDirectory()) copy(src, to + "/" + name);
    else mp.FS.writeFile(to + "/" + name, readFileSync(src));
  }
}
copy(flash, "/flash");

mp.globals.set("_argv", [module, ...args]);
try {
  mp.runPython(
    "import os, sys\nos.chdir('/flash')\nsys.path.insert(0, '')\nsys.argv[:] = list(_argv)\ndel _argv\n" +
      "_run = __import__(sys.argv[0])\n",
  );
  // A module that leaves a generator in RUN wants the heap collected at each of its yields: the
  // port collects only as a call comes in from here, so each resumption is a call of its own.
  mp.runPython("_steps = getattr(_run, 'RUN', None)\ndel _run");
  const resume = "_more = _steps is not None and next(_steps, _steps) is not _steps";
  do mp.runPython(resume);
  while (mp.globals.get("_more"));
} catch (error) {
  if (error.name !== "PythonError") throw error;
  if (error.type !== "SystemExit") {
    process.stderr.write(error.message + "\n");
    process.exitCode = 1;
  }
}
