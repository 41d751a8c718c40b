// RUN: not keir-opt %s --split-input-file 2>&1 | FileCheck %s

func.func @sqdist_dims() -> vector<1xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf32>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<2xf32>
  // CHECK: invalid.mlir:[[@LINE+1]]:{{[0-9]+}}: error: keir.sqdist: operands have dimensions 3 and 2; they must be equal
  %d = "keir.sqdist"(%x, %y) : (vector<3xf32>, vector<2xf32>) -> vector<1xf32>
  %r = "keir.reduce"(%d) {kind = "sum", axis = 1 : i64} : (vector<1xf32>) -> vector<1xf32>
  return %r : vector<1xf32>
}

// -----

func.func @add_dims() -> vector<3xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf32>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<2xf32>
  // CHECK: invalid.mlir:[[@LINE+1]]:{{[0-9]+}}: error: keir.add: operands have dimensions 3 and 2; they must be equal or one of them must be 1
  %s = "keir.add"(%x, %y) : (vector<3xf32>, vector<2xf32>) -> vector<3xf32>
  return %s : vector<3xf32>
}

// -----

func.func @unary_type() -> vector<2xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf32>
  // CHECK: invalid.mlir:[[@LINE+1]]:{{[0-9]+}}: error: expected 'vector<3xf32>' but got 'vector<2xf32>'
  %e = "keir.exp"(%x) : (vector<3xf32>) -> vector<2xf32>
  return %e : vector<2xf32>
}

// -----

func.func @wrong_result_dim() -> vector<2xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf32>
  // CHECK: invalid.mlir:[[@LINE+1]]:{{[0-9]+}}: error: keir.sum yields dimension 1, but its type says 2
  %s = "keir.sum"(%x) : (vector<3xf32>) -> vector<2xf32>
  return %s : vector<2xf32>
}

// -----

func.func @mixed_types() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf32>
  // CHECK: invalid.mlir:[[@LINE+1]]:{{[0-9]+}}: error: mixed float types in one kernel: f64 and f32
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf64>
  return %y : vector<1xf64>
}

// -----

func.func @elem_range() -> vector<1xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf32>
  // CHECK: invalid.mlir:[[@LINE+1]]:{{[0-9]+}}: error: keir.elem: index 3 is out of range for a vector of dimension 3
  %e = "keir.elem"(%x) {index = 3 : i64} : (vector<3xf32>) -> vector<1xf32>
  return %e : vector<1xf32>
}

// -----

func.func @category() -> vector<1xf32> {
  // CHECK: invalid.mlir:[[@LINE+1]]:{{[0-9]+}}: error: keir.var: category must be one of ('i', 'j', 'p'), got 'k'
  %x = "keir.var"() {index = 0 : i64, category = "k"} : () -> vector<1xf32>
  return %x : vector<1xf32>
}

// -----

func.func @unknown_op() -> vector<1xf32> {
  // CHECK: invalid.mlir:[[@LINE+1]]:{{[0-9]+}}: error: unregistered operation 'keir.frobnicate' found in dialect ('keir')
  %x = "keir.frobnicate"() : () -> vector<1xf32>
  return %x : vector<1xf32>
}

// -----

func.func @reduce_kind() -> vector<1xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf32>
  // CHECK: invalid.mlir:[[@LINE+1]]:{{[0-9]+}}: error: keir.reduce: unknown reduction kind 'median'
  %r = "keir.reduce"(%x) {kind = "median", axis = 1 : i64} : (vector<1xf32>) -> vector<1xf32>
  return %r : vector<1xf32>
}
