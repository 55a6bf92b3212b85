// The Node reference server, one process (reference.mjs says what it does).
// Usage: node reference_server.mjs PORT
import { serve } from "./reference.mjs";

serve(Number(process.argv[2]));
