// RUN: keir-opt %s | FileCheck %s
// RUN: keir-opt %s | keir-opt | FileCheck %s

// Every op of the dialect survives printing and parsing back.
// CHECK-LABEL: func.func @all_ops() -> vector<2xf32>
// CHECK: "keir.var"() {category = "i", index = 0 : i64} : () -> vector<3xf32>
// CHECK: "keir.var"() {category = "j", index = 1 : i64} : () -> vector<3xf32>
// CHECK: "keir.var"() {category = "p", index = 2 : i64} : () -> vector<1xf32>
// CHECK: "keir.constant"() {value = 2.5 : f64} : () -> vector<1xf32>
// CHECK: "keir.add"
// CHECK: "keir.sub"
// CHECK: "keir.mul"
// CHECK: "keir.div"
// CHECK: "keir.neg"
// CHECK: "keir.exp"
// CHECK: "keir.log"
// CHECK: "keir.sqrt"
// CHECK: "keir.rsqrt"
// CHECK: "keir.square"
// CHECK: "keir.pow"(%{{.*}}) {exponent = -3 : i64}
// CHECK: "keir.abs"
// CHECK: "keir.sum"(%{{.*}}) : (vector<3xf32>) -> vector<1xf32>
// CHECK: "keir.dot"
// CHECK: "keir.elem"(%{{.*}}) {index = 2 : i64} : (vector<3xf32>) -> vector<1xf32>
// CHECK: "keir.sqdist"
// CHECK: "keir.sqnorm2"
// CHECK: "keir.concat"(%{{.*}}, %{{.*}}) : (vector<1xf32>, vector<1xf32>) -> vector<2xf32>
// CHECK: "keir.extract"(%{{.*}}) {length = 2 : i64, start = 1 : i64} : (vector<3xf32>) -> vector<2xf32>
// CHECK: "keir.reduce"(%{{.*}}) {axis = 1 : i64, kind = "sum"} : (vector<2xf32>) -> vector<2xf32>
// CHECK: return %{{.*}} : vector<2xf32>
func.func @all_ops() -> vector<2xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf32>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf32>
  %p = "keir.var"() {index = 2 : i64, category = "p"} : () -> vector<1xf32>
  %c = "keir.constant"() {value = 2.5 : f64} : () -> vector<1xf32>
  %a = "keir.add"(%x, %p) : (vector<3xf32>, vector<1xf32>) -> vector<3xf32>
  %s = "keir.sub"(%a, %y) : (vector<3xf32>, vector<3xf32>) -> vector<3xf32>
  %m = "keir.mul"(%s, %c) : (vector<3xf32>, vector<1xf32>) -> vector<3xf32>
  %d = "keir.div"(%m, %y) : (vector<3xf32>, vector<3xf32>) -> vector<3xf32>
  %n = "keir.neg"(%d) : (vector<3xf32>) -> vector<3xf32>
  %e = "keir.exp"(%n) : (vector<3xf32>) -> vector<3xf32>
  %l = "keir.log"(%e) : (vector<3xf32>) -> vector<3xf32>
  %q = "keir.sqrt"(%l) : (vector<3xf32>) -> vector<3xf32>
  %r = "keir.rsqrt"(%q) : (vector<3xf32>) -> vector<3xf32>
  %sq = "keir.square"(%r) : (vector<3xf32>) -> vector<3xf32>
  %pw = "keir.pow"(%sq) {exponent = -3 : i64} : (vector<3xf32>) -> vector<3xf32>
  %ab = "keir.abs"(%pw) : (vector<3xf32>) -> vector<3xf32>
  %su = "keir.sum"(%ab) : (vector<3xf32>) -> vector<1xf32>
  %dt = "keir.dot"(%x, %y) : (vector<3xf32>, vector<3xf32>) -> vector<1xf32>
  %sd = "keir.sqdist"(%x, %y) : (vector<3xf32>, vector<3xf32>) -> vector<1xf32>
  %sn = "keir.sqnorm2"(%x) : (vector<3xf32>) -> vector<1xf32>
  %el = "keir.elem"(%ab) {index = 2 : i64} : (vector<3xf32>) -> vector<1xf32>
  %ex = "keir.extract"(%ab) {start = 1 : i64, length = 2 : i64} : (vector<3xf32>) -> vector<2xf32>
  %t1 = "keir.add"(%su, %dt) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %t2 = "keir.add"(%sd, %sn) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %t3 = "keir.mul"(%t1, %el) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %cc = "keir.concat"(%t3, %t2) : (vector<1xf32>, vector<1xf32>) -> vector<2xf32>
  %f = "keir.add"(%cc, %ex) : (vector<2xf32>, vector<2xf32>) -> vector<2xf32>
  %red = "keir.reduce"(%f) {kind = "sum", axis = 1 : i64} : (vector<2xf32>) -> vector<2xf32>
  return %red : vector<2xf32>
}

// CHECK-LABEL: func.func @in_f64() -> vector<1xf64>
// CHECK: "keir.reduce"(%{{.*}}) {axis = 0 : i64, kind = "sum"} : (vector<1xf64>) -> vector<1xf64>
func.func @in_f64() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<2xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<2xf64>
  %d = "keir.sqdist"(%x, %y) : (vector<2xf64>, vector<2xf64>) -> vector<1xf64>
  %r = "keir.reduce"(%d) {kind = "sum", axis = 0 : i64} : (vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}
