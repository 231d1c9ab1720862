// The format-neutral tensor types (DType, TensorInfo, TensorSpec, TensorView) and the store /
// writer protocols come with `import SafeTensors`.
@_exported import Tensors
