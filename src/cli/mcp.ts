import { resolve } from "node:path";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { createServer } from "../agent/mcp.js";

/** Serves the agent tools on stdin/stdout until the client closes the connection. */
export async function mcpCommand(o: {
  workdir?: string;
  runsDir?: string;
  skillsDir: string[];
}): Promise<number> {
  const dir = resolve(o.workdir ?? process.cwd());
  const server = createServer({
    dir,
    runsDir: resolve(dir, o.runsDir ?? "runs"),
    skillsDirs: o.skillsDir,
    env: process.env as Record<string, string | undefined>,
  });
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((res) => {
    transport.onclose = () => res();
  });
  await server.connect(transport);
  process.stderr.write(`medpipe MCP server on stdio (workspace ${dir})\n`);
  await closed;
  return 0;
}
