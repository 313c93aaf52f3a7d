// workflow screens (no inline scripts: behaviour is attached here).
"use strict";
