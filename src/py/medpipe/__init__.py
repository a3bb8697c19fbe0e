"""medpipe's GPU side: networks, losses, sliding-window inference, safetensors and ONNX I/O.

Needs only torch and numpy; runs on torch 1.13 (CPU) and torch 2.x (CUDA). Modules are
imported explicitly (`from medpipe.nets import build_network`) so that importing the
package costs nothing.
"""
