// RUN: keir-opt %s --keir-hoist | FileCheck %s

// keir-hoist regroups products and sums by loop level so that what depends only on the outer index or on
// parameters forms subexpressions the lowering computes outside the inner loop.

// A product is ordered by loop level: x z / (z + s) is one subexpression of i-variables and the parameter,
// computed once per row, and the pair loop does one multiplication by y (and no division).
// CHECK-LABEL: func.func @product
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[Y:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK-DAG:     %[[Z:.*]] = "keir.var"() {category = "i", index = 2 : i64}
// CHECK-DAG:     %[[S:.*]] = "keir.var"() {category = "p", index = 3 : i64}
// CHECK:         %[[XZ:.*]] = "keir.mul"(%[[X]], %[[Z]])
// CHECK-NEXT:    %[[H:.*]] = "keir.add"(%[[S]], %[[Z]])
// CHECK-NEXT:    %[[ROW:.*]] = "keir.div"(%[[XZ]], %[[H]])
// CHECK-NEXT:    %[[R:.*]] = "keir.mul"(%[[ROW]], %[[Y]])
// CHECK-NEXT:    "keir.reduce"(%[[R]])
func.func @product() -> vector<1xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf32>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf32>
  %z = "keir.var"() {index = 2 : i64, category = "i"} : () -> vector<1xf32>
  %s = "keir.var"() {index = 3 : i64, category = "p"} : () -> vector<1xf32>
  %a = "keir.mul"(%x, %y) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %b = "keir.mul"(%a, %z) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %h = "keir.add"(%z, %s) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %c = "keir.div"(%b, %h) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %r = "keir.reduce"(%c) {kind = "sum", axis = 1 : i64} : (vector<1xf32>) -> vector<1xf32>
  return %r : vector<1xf32>
}

// A sum too: (y - exp(x)) + s => (s - exp(x)) + y, one addition per pair.
// CHECK-LABEL: func.func @sum
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[Y:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK-DAG:     %[[S:.*]] = "keir.var"() {category = "p", index = 2 : i64}
// CHECK:         %[[E:.*]] = "keir.exp"(%[[X]])
// CHECK-NEXT:    %[[ROW:.*]] = "keir.sub"(%[[S]], %[[E]])
// CHECK-NEXT:    %[[R:.*]] = "keir.add"(%[[ROW]], %[[Y]])
// CHECK-NEXT:    "keir.reduce"(%[[R]])
func.func @sum() -> vector<1xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf32>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf32>
  %s = "keir.var"() {index = 2 : i64, category = "p"} : () -> vector<1xf32>
  %e = "keir.exp"(%x) : (vector<1xf32>) -> vector<1xf32>
  %a = "keir.sub"(%y, %e) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %b = "keir.add"(%a, %s) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %r = "keir.reduce"(%b) {kind = "sum", axis = 1 : i64} : (vector<1xf32>) -> vector<1xf32>
  return %r : vector<1xf32>
}

// In a reduction over i (axis 0) the inner loop runs over i: the j-variables are grouped first.
// CHECK-LABEL: func.func @over_i
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[Y:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK-DAG:     %[[W:.*]] = "keir.var"() {category = "j", index = 2 : i64}
// CHECK:         %[[COL:.*]] = "keir.mul"(%[[Y]], %[[W]])
// CHECK-NEXT:    %[[R:.*]] = "keir.mul"(%[[COL]], %[[X]])
func.func @over_i() -> vector<1xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf32>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf32>
  %w = "keir.var"() {index = 2 : i64, category = "j"} : () -> vector<1xf32>
  %a = "keir.mul"(%y, %x) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %b = "keir.mul"(%a, %w) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %r = "keir.reduce"(%b) {kind = "sum", axis = 0 : i64} : (vector<1xf32>) -> vector<1xf32>
  return %r : vector<1xf32>
}

// keir-hoist only regroups: merging exponentials is keir-simplify's.
// CHECK-LABEL: func.func @only_regroups
// CHECK:         %[[A:.*]] = "keir.exp"
// CHECK-NEXT:    %[[B:.*]] = "keir.exp"
// CHECK-NEXT:    "keir.mul"(%[[A]], %[[B]])
func.func @only_regroups() -> vector<1xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf32>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf32>
  %a = "keir.exp"(%x) : (vector<1xf32>) -> vector<1xf32>
  %b = "keir.exp"(%y) : (vector<1xf32>) -> vector<1xf32>
  %m = "keir.mul"(%a, %b) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %r = "keir.reduce"(%m) {kind = "sum", axis = 1 : i64} : (vector<1xf32>) -> vector<1xf32>
  return %r : vector<1xf32>
}
