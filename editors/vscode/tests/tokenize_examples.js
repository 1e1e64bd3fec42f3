#!/usr/bin/env node
// Tokenizes real .mdl files with the extension's TextMate grammar, the way VS Code does
// (vscode-textmate + the Oniguruma WASM build).
//
//   node tests/tokenize_examples.js            the repository's examples and stdlib files
//   node tests/tokenize_examples.js FILE...    those files
//   node tests/tokenize_examples.js --dump F   print every token of F with its scopes
//
// Every file must tokenize without an exception and without hitting the per-line time limit.
// A file that compiles (everything outside examples/errors/) must also contain no
// invalid.illegal token and must end with the grammar back at its top level, so an unbalanced
// begin/end rule in the grammar shows up here.
'use strict';

const fs = require('fs');
const path = require('path');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const HERE = path.resolve(__dirname, '..');
const REPO = path.resolve(HERE, '..', '..');
const GRAMMAR = path.join(HERE, 'syntaxes', 'mdl.tmLanguage.json');
const LINE_TIME_LIMIT_MS = 1000;

function mdlFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...mdlFiles(full));
    else if (entry.name.endsWith('.mdl')) out.push(full);
  }
  return out.sort();
}

async function loadGrammar() {
  const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName) => {
      if (scopeName !== 'source.mdl') return null;
      return vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR, 'utf8'), GRAMMAR);
    },
  });
  const grammar = await registry.loadGrammar('source.mdl');
  if (!grammar) throw new Error(`could not load ${GRAMMAR}`);
  return grammar;
}

function tokenize(grammar, text) {
  let stack = vsctm.INITIAL;
  const lines = [];
  const problems = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const r = grammar.tokenizeLine(line, stack, LINE_TIME_LIMIT_MS);
    if (r.stoppedEarly) problems.push(`line ${i + 1}: tokenizing stopped at the time limit`);
    lines.push({ line, tokens: r.tokens });
    stack = r.ruleStack;
  });
  return { lines, problems, endsAtTop: stack.equals(vsctm.INITIAL) || depth(stack) === 1 };
}

function depth(stack) {
  // StateStack has no public depth; count parents through the documented-but-internal field.
  let n = 0;
  for (let s = stack; s; s = s.parent) n++;
  return n;
}

async function main() {
  const args = process.argv.slice(2);
  const grammar = await loadGrammar();

  if (args[0] === '--dump') {
    for (const file of args.slice(1)) {
      for (const { line, tokens } of tokenize(grammar, fs.readFileSync(file, 'utf8')).lines) {
        for (const t of tokens) {
          const text = line.slice(t.startIndex, t.endIndex);
          if (text.trim()) console.log(JSON.stringify(text).padEnd(24), t.scopes.slice(1).join(' '));
        }
      }
    }
    return 0;
  }

  const files = args.length
    ? args.map((f) => path.resolve(f))
    : [...mdlFiles(path.join(REPO, 'examples')), ...mdlFiles(path.join(REPO, 'mdl', 'stdlib'))];
  if (!files.length) {
    console.error('no .mdl files found');
    return 1;
  }
  let failed = 0;
  for (const file of files) {
    const rel = path.relative(REPO, file);
    const compiles = !rel.split(path.sep).includes('errors');
    let problems;
    try {
      const result = tokenize(grammar, fs.readFileSync(file, 'utf8'));
      problems = result.problems;
      if (compiles) {
        result.lines.forEach(({ line, tokens }, i) => {
          for (const t of tokens) {
            const bad = t.scopes.find((s) => s.startsWith('invalid.'));
            if (bad) problems.push(`line ${i + 1}: ${bad} at ${JSON.stringify(line.slice(t.startIndex, t.endIndex))}`);
          }
        });
        if (!result.endsAtTop) problems.push('the grammar is still inside a begin/end rule at the end of the file');
      }
    } catch (e) {
      problems = [`exception: ${e && e.stack ? e.stack : e}`];
    }
    if (problems.length) {
      failed++;
      console.log(`FAIL ${rel}`);
      for (const p of problems) console.log(`  ${p}`);
    } else {
      console.log(`ok   ${rel}`);
    }
  }
  console.log(`${files.length - failed}/${files.length} files tokenized cleanly`);
  return failed ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  console.error(e);
  process.exit(2);
});
