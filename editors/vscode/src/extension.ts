// The mdl extension: starts the mdl language server (`mdlc lsp` unless `mdl.server.command` says
// otherwise) over stdio for .mdl files and restarts it when that setting changes.
import * as vscode from 'vscode';
import {
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  TransportKind,
} from 'vscode-languageclient/node';

const DEFAULT_COMMAND = ['mdlc', 'lsp'];

let client: LanguageClient | undefined;
let output: vscode.OutputChannel | undefined;
// Starts and stops run one after another, so a quick series of setting changes cannot leave two
// servers running.
let pending: Promise<void> = Promise.resolve();

/** The configured server command as [program, ...args]; a string is split on whitespace. */
export function serverCommand(config: vscode.WorkspaceConfiguration): string[] {
  const raw = config.get<string | string[]>('server.command', DEFAULT_COMMAND);
  const parts = (Array.isArray(raw) ? raw : String(raw ?? '').trim().split(/\s+/))
    .map((p) => String(p))
    .filter((p) => p.length > 0);
  return parts.length > 0 ? parts : DEFAULT_COMMAND;
}

function serialize(step: () => Promise<void>): Promise<void> {
  pending = pending.then(step, step);
  return pending;
}

async function start(): Promise<void> {
  const [command, ...args] = serverCommand(vscode.workspace.getConfiguration('mdl'));
  const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const serverOptions: ServerOptions = {
    command,
    args,
    transport: TransportKind.stdio,
    options: cwd ? { cwd } : undefined,
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'mdl' },
      { scheme: 'untitled', language: 'mdl' },
    ],
    outputChannel: output,
    // `mdl.trace.server` is read by the client itself from the section named by the client id.
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher('**/*.mdl') },
  };
  const next = new LanguageClient('mdl', 'mdl Language Server', serverOptions, clientOptions);
  try {
    await next.start();
    client = next;
  } catch (err) {
    const shown = [command, ...args].join(' ');
    void vscode.window
      .showErrorMessage(
        `mdl: could not start the language server with \`${shown}\`: ${err instanceof Error ? err.message : err}. ` +
          'Install the mdl package (pip install -e .) or set "mdl.server.command".',
        'Open Settings',
      )
      .then((choice) => {
        if (choice === 'Open Settings') {
          void vscode.commands.executeCommand('workbench.action.openSettings', 'mdl.server.command');
        }
      });
    // A client that failed to start may still hold a process or listeners; drop it.
    await next.dispose().catch(() => undefined);
  }
}

async function stop(): Promise<void> {
  const current = client;
  client = undefined;
  if (current) {
    try {
      await current.stop();
    } catch {
      // The server may already be gone (crashed or killed); nothing left to stop.
    }
  }
}

export function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel('mdl Language Server');
  context.subscriptions.push(output);
  context.subscriptions.push(
    vscode.commands.registerCommand('mdl.restartServer', () => serialize(async () => {
      await stop();
      await start();
    })),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('mdl.server.command')) {
        void serialize(async () => {
          await stop();
          await start();
        });
      }
    }),
  );
  return serialize(start);
}

export function deactivate(): Promise<void> {
  return serialize(stop);
}
