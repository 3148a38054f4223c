// What the check scripts share: their `ok`/`FAIL` lines and, at the end, the verdict
// and the exit status (1 when anything failed).

/// The report of the check named `name` (e.g. `browser test`).
export function report(name) {
  const failures = [];
  const fail = (msg) => {
    failures.push(msg);
    console.log(`  FAIL ${msg}`);
  };
  const pass = (msg) => console.log(`  ok   ${msg}`);
  const check = (cond, msg) => (cond ? pass(msg) : fail(msg));
  const finish = () => {
    if (failures.length > 0) {
      console.log(`${name} FAILED: ${failures.length} failure(s)`);
      process.exit(1);
    }
    console.log(`${name} passed`);
  };
  return { fail, pass, check, finish };
}
