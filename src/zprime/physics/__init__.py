"""Physics that every search shares and none owns: constants, the models and their widths,
Dirac algebra and four-vector kinematics. Imports nothing of zprime but the base layer."""
