#include "core/onnx/loader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include <google/protobuf/unknown_field_set.h>
#include <onnx/onnx_pb.h>

#include "core/kernels/pack_store.h"
#include "core/onnx/normalize.h"
#include "core/onnx/opset.h"
#include "core/onnx/skeleton.h"
#include "core/tensor/lowbit.h"

namespace mserve {
namespace {

// A read-only file mapping, shared by every tensor that views it.
class Mapping {
 public:
  static StatusOr<std::shared_ptr<Mapping>> open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return LoadError("cannot open '" + path + "': " + std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return LoadError("'" + path + "' is not a regular file");
    }
    auto m = std::make_shared<Mapping>();
    m->size_ = static_cast<size_t>(st.st_size);
    if (m->size_ > 0) {
      void* p = mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        return LoadError("cannot map '" + path + "': " + std::strerror(errno));
      }
      m->data_ = p;
    }
    ::close(fd);
    return m;
  }
  ~Mapping() {
    if (data_) munmap(data_, size_);
  }
  const char* data() const { return static_cast<const char*>(data_); }
  size_t size() const { return size_; }
  // Drops the resident pages around [offset, offset + len): the mapping is private and never
  // written, so a later read faults them in again from the file (page cache).
  void drop(size_t offset, size_t len) const {
    static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    if (!data_ || len == 0) return;
    const size_t begin = offset / page * page, end = std::min(size_, offset + len);
    madvise(static_cast<char*>(data_) + begin, end - begin, MADV_DONTNEED);
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// The model's bytes, from which tensors take their raw data (Skeleton::weights): a file mapping
// that tensors may view, or bytes that are only valid while the model loads.
struct ModelBytes {
  const char* data = nullptr;
  std::shared_ptr<Mapping> map;  // null for borrowed bytes
  std::vector<WeightSpan> weights;
  PackStore* packs = nullptr;  // where copies of unaligned weights are kept across processes
};

// Keeps a mapping alive for a tensor that views it; drops the view's pages when it goes (a
// kernel packed the weights and the session released them).
struct MappedView {
  std::shared_ptr<Mapping> map;
  size_t offset, size;
  ~MappedView() { map->drop(offset, size); }
};

// Unaligned weights at least this large go to the pack store (smaller ones are not worth a lookup).
constexpr size_t kMinStoredCopy = 64 << 10;

// A tensor of the `nbytes` at `p`: a view of `map` (which holds them) when they are aligned for
// their type, else a copy; with a pack store, the store's copy (shared with other processes)
// when it has one, else a new copy offered to it.
StatusOr<Tensor> tensor_of_bytes(DType dtype, const Shape& shape, const char* p, size_t nbytes,
                                 const std::shared_ptr<Mapping>& map, PackStore* packs) {
  const size_t offset = map ? static_cast<size_t>(p - map->data()) : 0;
  if (map && reinterpret_cast<uintptr_t>(p) % dtype_size(dtype) == 0) {
    auto buf =
        Buffer::borrow(const_cast<char*>(p), nbytes, std::shared_ptr<MappedView>(new MappedView{map, offset, nbytes}));
    return Tensor(dtype, shape, std::move(buf), const_cast<char*>(p));
  }
  const bool stored = packs && nbytes >= kMinStoredCopy;
  PackKey key;
  if (stored) {
    const int32_t type = static_cast<int32_t>(dtype);
    key = PackKeyBuilder("weights as stored").pod(type).add(p, nbytes).key();
    PackStore::Found found = packs->find(key, nbytes);
    if (found.data) {
      if (map) map->drop(offset, nbytes);
      void* data = const_cast<void*>(found.data);
      return Tensor(dtype, shape, Buffer::borrow(data, nbytes, std::const_pointer_cast<void>(found.keep)), data);
    }
  }
  MS_ASSIGN_OR_RETURN(Tensor out, Tensor::empty(dtype, shape));
  std::memcpy(out.raw(), p, nbytes);
  if (map) map->drop(offset, nbytes);
  if (stored) packs->offer(key, out.raw(), nbytes, out.buffer());
  return out;
}

StatusOr<DType> map_dtype(int32_t t) {
  const DType d = dtype_of_onnx(t);
  if (d != DType::kUndefined) return d;
  if (t == onnx::TensorProto::COMPLEX64 || t == onnx::TensorProto::COMPLEX128)
    return Unsupported("complex tensors are not supported");
  return Unsupported("tensor element type " + std::to_string(t) + " is not supported");
}

// Real path of `p`, or empty when it doesn't resolve.
std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  return ::realpath(p.c_str(), buf) ? std::string(buf) : std::string();
}

class Converter {
 public:
  Converter(const onnx::ModelProto& model, const ModelBytes& bytes, std::string base_dir)
      : model_(model), bytes_(bytes), base_dir_(std::move(base_dir)) {}
  // A subgraph's converter: names it does not define resolve in `parent`'s scope.
  explicit Converter(Converter* parent)
      : model_(parent->model_), bytes_(parent->bytes_), base_dir_(parent->base_dir_), parent_(parent) {
    g_.opsets = parent->g_.opsets;
    g_.ir_version = parent->g_.ir_version;
  }

  StatusOr<Graph> run() {
    const auto& m = model_;
    if (!m.has_ir_version() || !m.has_graph())
      return LoadError("not an ONNX model: the file parsed, but has no IR version or no graph");
    if (m.ir_version() > kMaxIrVersion)
      return LoadError("IR version " + std::to_string(m.ir_version()) +
                       " is newer than the newest "
                       "supported (" +
                       std::to_string(kMaxIrVersion) +
                       "); upgrade mserve or "
                       "export with an older IR version");
    g_.ir_version = m.ir_version();
    g_.producer = m.producer_name() + (m.producer_version().empty() ? "" : " " + m.producer_version());
    for (const auto& op : m.opset_import()) {
      std::string dom = op.domain() == "ai.onnx" ? "" : op.domain();
      g_.opsets[dom] = op.version();
    }
    if (m.opset_import_size() == 0) g_.opsets[""] = 1;  // IR < 3 models: implied opset 1
    auto it = g_.opsets.find("");
    if (it != g_.opsets.end() && it->second > kMaxOnnxOpset)
      return Unsupported("the model imports ONNX opset " + std::to_string(it->second) + "; the newest supported is " +
                         std::to_string(kMaxOnnxOpset));
    MS_RETURN_IF_ERROR(convert_graph(m.graph()));
    return std::move(g_);
  }

 private:
  // The id of `name` as a value visible here (defined so far in this graph, or captured from an
  // enclosing one), or -1.
  int resolve(const std::string& name) {
    auto it = ids_.find(name);
    if (it != ids_.end() && produced_.count(it->second)) return it->second;
    if (!parent_) return -1;
    const int outer = parent_->resolve(name);
    if (outer < 0) return -1;
    const int id = value_id(name);
    produced_.insert(id);
    captures_.push_back({id, outer});
    return id;
  }

  int value_id(const std::string& name) {
    auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    int id = static_cast<int>(g_.values.size());
    Value v;
    v.name = name;
    g_.values.push_back(std::move(v));
    ids_.emplace(name, id);
    return id;
  }

  Status convert_value_info(const onnx::ValueInfoProto& vi, Value& v) {
    // A subgraph's inputs and outputs may leave their types to inference (the IR says so; the
    // main graph's must be given): no type at all, or a tensor of no element type.
    const bool untyped =
        vi.type().value_case() == onnx::TypeProto::VALUE_NOT_SET ||
        (vi.type().has_tensor_type() && vi.type().tensor_type().elem_type() == onnx::TensorProto::UNDEFINED &&
         !vi.type().tensor_type().has_shape());
    if (untyped && parent_) return Status::OK();
    if (!vi.type().has_tensor_type())
      return Unsupported("'" + vi.name() +
                         "' is not a tensor (sequence, map and optional types "
                         "are not supported)");
    const auto& tt = vi.type().tensor_type();
    auto dt = map_dtype(tt.elem_type());
    if (!dt.ok()) return dt.status().with_context("'" + vi.name() + "': ");
    v.dtype = dt.value();
    if (tt.has_shape()) {
      v.has_shape = true;
      v.dims.clear();
      for (const auto& d : tt.shape().dim()) {
        Dim dim;
        if (d.has_dim_value() && d.dim_value() >= 0)
          dim.value = d.dim_value();
        else
          dim.symbol = d.dim_param();
        v.dims.push_back(dim);
      }
    }
    return Status::OK();
  }

  Status convert_graph(const onnx::GraphProto& gp) {
    std::set<std::string> init_names;
    for (const auto& t : gp.initializer()) {
      if (t.name().empty()) return LoadError("an initializer has no name");
      if (!init_names.insert(t.name()).second) return LoadError("initializer '" + t.name() + "' is defined twice");
      MS_ASSIGN_OR_RETURN(Tensor tensor, convert_tensor(t));
      g_.initializers[value_id(t.name())] = std::move(tensor);
    }
    if (gp.sparse_initializer_size() > 0) return Unsupported("sparse initializers are not supported");
    for (const auto& vi : gp.input()) {
      int id = value_id(vi.name());
      if (init_names.count(vi.name())) continue;  // an input with a default: treated as constant
      MS_RETURN_IF_ERROR(convert_value_info(vi, g_.values[id]));
      g_.inputs.push_back(id);
    }
    std::set<int>& produced = produced_;
    produced.insert(g_.inputs.begin(), g_.inputs.end());
    for (auto& [id, t] : g_.initializers) produced.insert(id);
    g_.num_formal_inputs = g_.inputs.size();
    // Names a subgraph uses without defining them come from enclosing graphs (captures).
    std::set<std::string> local;
    for (const auto& np : gp.node())
      for (const auto& out : np.output()) local.insert(out);

    int index = 0;
    for (const auto& np : gp.node()) {
      Node n;
      n.name = np.name().empty() ? "#" + std::to_string(index) : np.name();
      ++index;
      n.op_type = np.op_type();
      n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
      auto op = g_.opsets.find(n.domain);
      n.opset = op == g_.opsets.end() ? 0 : static_cast<int>(op->second);
      for (const auto& in : np.input()) {
        if (in.empty()) {
          n.inputs.push_back(kNoValue);
          continue;
        }
        const bool outer = parent_ && !local.count(in) && !ids_.count(in);
        n.inputs.push_back(outer && resolve(in) >= 0 ? ids_.at(in) : value_id(in));
      }
      for (const auto& out : np.output()) {
        if (out.empty()) {
          n.outputs.push_back(kNoValue);
          continue;
        }
        int id = value_id(out);
        if (!produced.insert(id).second)
          return LoadError(n.where() + "output '" + out + "' is already defined elsewhere");
        n.outputs.push_back(id);
      }
      Status st = convert_attributes(np, n);
      if (st.code() == Code::kUnsupported)
        n.unsupported = st.message();
      else
        MS_RETURN_IF_ERROR(st.with_context(n.where()));
      g_.nodes.push_back(std::move(n));
    }
    for (const auto& n : g_.nodes)
      for (int in : n.inputs)
        if (in != kNoValue && !produced.count(in))
          return LoadError(n.where() + "input '" + g_.values[in].name +
                           "' is not produced by any "
                           "node, initializer or graph input (truncated or inconsistent model?)");
    for (const auto& vi : gp.output()) {
      int id = resolve(vi.name());  // a subgraph may output a captured outer value directly
      if (id < 0) id = value_id(vi.name());
      if (!produced.count(id))
        return LoadError("graph output '" + vi.name() +
                         "' is not produced by any node, "
                         "initializer or graph input (truncated or inconsistent model?)");
      if (vi.type().has_sequence_type()) {
        const Node* zm = nullptr;
        for (const Node& n : g_.nodes)
          if (n.op_type == "ZipMap" && n.domain == "ai.onnx.ml" && !n.outputs.empty() && n.outputs[0] == id) zm = &n;
        if (zm) {
          Value& v = g_.values[id];
          v.dtype = DType::kFloat32;
          v.zipmap = true;
          v.zipmap_labels = zm->attr_ints("classlabels_int64s");
          if (const Attribute* a = zm->attr("classlabels_strings")) v.zipmap_string_labels = a->strings;
          g_.outputs.push_back(id);
          continue;
        }
      }
      MS_RETURN_IF_ERROR(convert_value_info(vi, g_.values[id]).with_context("graph output: "));
      g_.outputs.push_back(id);
    }
    if (g_.outputs.empty()) return LoadError("the graph has no outputs");
    for (const auto& [local_id, outer_id] : captures_) g_.inputs.push_back(local_id);
    // Old operator forms become the newest ones here, once, for this graph (each subgraph is
    // converted, and so normalized, on its own).
    return normalize_opsets(g_);
  }
  Status convert_attributes(const onnx::NodeProto& np, Node& n) {
    using AP = onnx::AttributeProto;
    const auto n_explicit = static_cast<std::ptrdiff_t>(n.inputs.size());
    for (const auto& a : np.attribute()) {
      if (!a.ref_attr_name().empty()) return Unsupported("attribute references are not supported");
      Attribute at;
      switch (a.type()) {
        case AP::FLOAT:
          at.kind = Attribute::Kind::kFloat;
          at.f = a.f();
          break;
        case AP::INT:
          at.kind = Attribute::Kind::kInt;
          at.i = a.i();
          break;
        case AP::STRING:
          at.kind = Attribute::Kind::kString;
          at.s = a.s();
          break;
        case AP::FLOATS:
          at.kind = Attribute::Kind::kFloats;
          at.floats.assign(a.floats().begin(), a.floats().end());
          break;
        case AP::INTS:
          at.kind = Attribute::Kind::kInts;
          at.ints.assign(a.ints().begin(), a.ints().end());
          break;
        case AP::STRINGS:
          at.kind = Attribute::Kind::kStrings;
          at.strings.assign(a.strings().begin(), a.strings().end());
          break;
        case AP::TENSOR: {
          at.kind = Attribute::Kind::kTensor;
          auto t = convert_tensor(a.t());
          if (!t.ok()) return t.status().with_context("attribute '" + a.name() + "': ");
          at.t = std::move(t).value();
          break;
        }
        case AP::GRAPH: {
          at.kind = Attribute::Kind::kGraph;
          Converter sub(this);
          Status st = sub.convert_graph(a.g());
          if (!st.ok()) return st.with_context("subgraph '" + a.name() + "': ");
          // Captured outer values become implicit inputs of this node.
          for (const auto& [local_id, outer_id] : sub.captures_) {
            auto pos = std::find(n.inputs.begin(), n.inputs.end(), outer_id);
            if (pos == n.inputs.end() || pos - n.inputs.begin() < n_explicit) {
              n.inputs.push_back(outer_id);
              ++n.num_implicit_inputs;
              pos = n.inputs.end() - 1;
            }
            sub.g_.capture_positions.push_back(static_cast<int>(pos - n.inputs.begin()));
          }
          at.g = std::make_shared<Graph>(std::move(sub.g_));
          break;
        }
        case AP::GRAPHS:
          return Unsupported("attribute '" + a.name() + "' holds a list of graphs, which is not supported");
        default: return Unsupported("attribute '" + a.name() + "' has an unsupported type");
      }
      n.attrs[a.name()] = std::move(at);
    }
    return Status::OK();
  }

  StatusOr<Tensor> convert_tensor(const onnx::TensorProto& t) {
    const std::string what = "tensor '" + t.name() + "': ";
    auto dt = map_dtype(t.data_type());
    if (!dt.ok()) return dt.status().with_context(what);
    DType dtype = dt.value();
    if (!Shape::fits(t.dims_size()))
      return Unsupported(what + "rank " + std::to_string(t.dims_size()) + " exceeds the maximum " +
                         std::to_string(Shape::kMaxRank));
    Shape shape;
    for (int64_t d : t.dims()) {
      if (d < 0) return LoadError(what + "negative dimension");
      shape.push_back(d);
    }
    auto bytes_or = aligned_bytes(dtype, shape);
    if (!bytes_or.ok()) return LoadError(what + bytes_or.status().message());
    const size_t esize = dtype_size(dtype);
    const size_t nbytes = static_cast<size_t>(shape.numel()) * esize;

    if (dtype == DType::kString) {
      // Strings travel in string_data (raw_data and external data are not defined for them).
      if (t.data_location() == onnx::TensorProto::EXTERNAL || raw_data(t))
        return LoadError(what + "string tensors must store their values in string_data");
      if (t.string_data_size() != shape.numel())
        return LoadError(what + "holds " + std::to_string(t.string_data_size()) + " strings, the shape " + shape.str() +
                         " needs " + std::to_string(shape.numel()) + " (missing initializer data)");
      MS_ASSIGN_OR_RETURN(Tensor out, Tensor::empty(dtype, shape));
      for (int64_t i = 0; i < shape.numel(); ++i) out.str(i) = t.string_data(static_cast<int>(i));
      return out;
    }
    if (lowbit_width(dtype) != 0 && lowbit_width(dtype) < 8) return packed_tensor(t, dtype, shape);
    if (t.data_location() == onnx::TensorProto::EXTERNAL) return external_tensor(t, dtype, shape);
    if (auto raw = raw_data(t)) {
      if (raw->size() != nbytes)
        return LoadError(what + "raw data holds " + std::to_string(raw->size()) + " bytes, the shape " + shape.str() +
                         " needs " + std::to_string(nbytes) + " (missing or truncated data)");
      return tensor_of_bytes(dtype, shape, raw->data(), nbytes, bytes_.map, bytes_.packs);
    }
    // The values are counted before anything is allocated: dims the data cannot fill are refused.
    const int64_t n = shape.numel();
    int64_t have = 0;
    switch (dtype) {
      case DType::kFloat32: have = t.float_data_size(); break;
      case DType::kFloat64: have = t.double_data_size(); break;
      case DType::kInt64: have = t.int64_data_size(); break;
      case DType::kUInt32:
      case DType::kUInt64: have = t.uint64_data_size(); break;
      default: have = t.int32_data_size(); break;  // float16, int8/16/32, uint8/16, bool
    }
    if (have != n)
      return LoadError(what + "holds " + std::to_string(have) + " values, the shape " + shape.str() + " needs " +
                       std::to_string(n) + " (missing initializer data)");
    MS_ASSIGN_OR_RETURN(Tensor out, Tensor::empty(dtype, shape));
    switch (dtype) {
      case DType::kFloat32: std::copy(t.float_data().begin(), t.float_data().end(), out.data<float>()); break;
      case DType::kFloat64: std::copy(t.double_data().begin(), t.double_data().end(), out.data<double>()); break;
      case DType::kInt64: std::copy(t.int64_data().begin(), t.int64_data().end(), out.data<int64_t>()); break;
      case DType::kUInt32:
      case DType::kUInt64:
        for (int64_t i = 0; i < n; ++i) {
          if (dtype == DType::kUInt32)
            out.data<uint32_t>()[i] = static_cast<uint32_t>(t.uint64_data(i));
          else
            out.data<uint64_t>()[i] = t.uint64_data(i);
        }
        break;
      case DType::kFloat16:
      case DType::kBFloat16:  // their bits, in int32_data
        for (int64_t i = 0; i < n; ++i) out.data<uint16_t>()[i] = static_cast<uint16_t>(t.int32_data(i));
        break;
      case DType::kFloat8E4M3FN:  // the float8 codes, one per int32_data entry
      case DType::kFloat8E4M3FNUZ:
      case DType::kFloat8E5M2:
      case DType::kFloat8E5M2FNUZ:
      case DType::kFloat8E8M0:
        for (int64_t i = 0; i < n; ++i) {
          const int32_t v = t.int32_data(static_cast<int>(i));
          if (v < 0 || v > 255)
            return LoadError(what + "int32_data holds " + std::to_string(v) + ", not a float8 code");
          out.data<uint8_t>()[i] = static_cast<uint8_t>(v);
        }
        break;
      default:  // int8/16/32, uint8/16, bool travel in int32_data
        MS_SWITCH_ALL(dtype, T, return Internal("unexpected dtype"),
                      for (int64_t i = 0; i < n; ++i) out.data<T>()[i] = static_cast<T>(t.int32_data(i)));
    }
    return out;
  }

  // The 4- and 2-bit types: packed (two or four to a byte, lowest bits first) in raw_data, in
  // external data, or one packed byte per int32_data entry; unpacked here to one byte each.
  StatusOr<Tensor> packed_tensor(const onnx::TensorProto& t, DType dtype, const Shape& shape) {
    const std::string what = "tensor '" + t.name() + "': ";
    const int64_t n = shape.numel();
    const int64_t need = lowbit_packed_bytes(dtype, n);
    const std::string per = lowbit_width(dtype) == 4 ? "two" : "four";
    std::string bytes;
    if (t.data_location() == onnx::TensorProto::EXTERNAL) {
      MS_ASSIGN_OR_RETURN(Tensor raw, external_tensor(t, DType::kUInt8, Shape{need}));
      bytes.assign(static_cast<const char*>(raw.raw()), static_cast<size_t>(need));
    } else if (auto raw = raw_data(t)) {
      if (static_cast<int64_t>(raw->size()) != need)
        return LoadError(what + "raw data holds " + std::to_string(raw->size()) + " bytes, the shape " + shape.str() +
                         " of " + dtype_name(dtype) + " (" + per + " to a byte) needs " + std::to_string(need) +
                         " (missing, truncated or unpacked data)");
      bytes.assign(raw->data(), raw->size());
    } else {
      if (t.int32_data_size() != need)
        return LoadError(what + "holds " + std::to_string(t.int32_data_size()) + " packed values, the shape " +
                         shape.str() + " of " + dtype_name(dtype) + " (" + per + " to a byte) needs " +
                         std::to_string(need) + " (missing initializer data)");
      bytes.resize(static_cast<size_t>(need));
      for (int64_t i = 0; i < need; ++i) {
        const int32_t v = t.int32_data(static_cast<int>(i));
        if (v < 0 || v > 255) return LoadError(what + "int32_data holds " + std::to_string(v) + ", not a packed byte");
        bytes[static_cast<size_t>(i)] = static_cast<char>(v);
      }
    }
    MS_ASSIGN_OR_RETURN(Tensor out, Tensor::empty(dtype, shape));
    lowbit_unpack(dtype, reinterpret_cast<const uint8_t*>(bytes.data()), n, out.data<uint8_t>());
    return out;
  }

  StatusOr<Tensor> external_tensor(const onnx::TensorProto& t, DType dtype, const Shape& shape) {
    const std::string what = "tensor '" + t.name() + "': ";
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& kv : t.external_data()) {
      try {
        if (kv.key() == "location")
          location = kv.value();
        else if (kv.key() == "offset")
          offset = std::stoll(kv.value());
        else if (kv.key() == "length")
          length = std::stoll(kv.value());
      } catch (const std::exception&) {
        return LoadError(what + "external data field '" + kv.key() + "' is not a number");
      }
    }
    if (location.empty()) return LoadError(what + "external data has no location");
    if (base_dir_.empty())
      return LoadError(what + "uses external data ('" + location +
                       "'); load the model from its "
                       "file path (or pass base_dir) so the data file can be found");
    if (location[0] == '/')
      return LoadError(what + "external data path '" + location +
                       "' is absolute; it must be "
                       "relative to the model's directory");
    const std::string base = real_path(base_dir_);
    const std::string full = real_path(base_dir_ + "/" + location);
    if (full.empty()) return LoadError(what + "external data file '" + location + "' does not exist");
    if (base.empty() || full.compare(0, base.size() + 1, base + "/") != 0)
      return LoadError(what + "external data path '" + location + "' leaves the model's directory");
    auto it = maps_.find(full);
    if (it == maps_.end()) {
      MS_ASSIGN_OR_RETURN(auto m, Mapping::open(full));
      it = maps_.emplace(full, std::move(m)).first;
    }
    const auto& map = it->second;
    const size_t nbytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
    if (offset < 0 || (length >= 0 && static_cast<size_t>(length) != nbytes))
      return LoadError(what + "external data length " + std::to_string(length) +
                       " does not match "
                       "the shape " +
                       shape.str() + " (" + std::to_string(nbytes) + " bytes)");
    if (static_cast<size_t>(offset) > map->size() || map->size() - offset < nbytes)
      return LoadError(what + "external data file '" + location + "' is too short (missing data)");
    return tensor_of_bytes(dtype, shape, map->data() + offset, nbytes, map, bytes_.packs);
  }

  // The tensor's raw_data: where the skeleton found it in the model's bytes, or none.
  std::optional<std::string_view> raw_data(const onnx::TensorProto& t) const {
    const auto& fields = t.unknown_fields();
    for (int i = fields.field_count() - 1; i >= 0; --i) {
      const auto& f = fields.field(i);
      if (f.number() != static_cast<int>(kWeightRefField) || f.type() != google::protobuf::UnknownField::TYPE_VARINT)
        continue;
      if (f.varint() >= bytes_.weights.size()) break;  // not the skeleton's (it numbers its own)
      const WeightSpan& w = bytes_.weights[f.varint()];
      return std::string_view(bytes_.data + w.offset, w.size);
    }
    return std::nullopt;
  }

  const onnx::ModelProto& model_;
  const ModelBytes& bytes_;
  std::string base_dir_;
  Graph g_;
  std::map<std::string, int> ids_;
  std::map<std::string, std::shared_ptr<Mapping>> maps_;
  Converter* parent_ = nullptr;
  std::set<int> produced_;                     // values defined so far in this graph
  std::vector<std::pair<int, int>> captures_;  // (local id, id in the parent) per captured name
};

// The model in `bytes` (data, map) of `size` bytes: its skeleton parsed by protobuf, its weights
// taken from the bytes.
StatusOr<Graph> parse(ModelBytes& bytes, size_t size, const std::string& base_dir) {
  const Status not_onnx =
      LoadError("not an ONNX model: the bytes do not parse as an ONNX ModelProto (wrong file, or truncated)");
  if (size == 0) return not_onnx;
  onnx::ModelProto model;
  {
    MS_ASSIGN_OR_RETURN(Skeleton sk, strip_weights(bytes.data, size));
    if (sk.bytes.size() > static_cast<size_t>(INT_MAX))
      return Unsupported("model protobuf larger than 2 GB without its weights; store the weights as external data");
    if (!model.ParseFromString(sk.bytes)) return not_onnx;
    bytes.weights = std::move(sk.weights);
  }
  auto g = Converter(model, bytes, base_dir).run();
  // Pages the parse read (and weights copied) are dropped; views fault theirs in when read.
  if (bytes.map) bytes.map->drop(0, bytes.map->size());
  return g;
}

}  // namespace

StatusOr<Graph> load_onnx_file(const std::string& path, PackStore* packs) {
  MS_ASSIGN_OR_RETURN(auto map, Mapping::open(path));
  std::string dir = ".";
  auto slash = path.rfind('/');
  if (slash != std::string::npos) dir = slash == 0 ? "/" : path.substr(0, slash);
  ModelBytes bytes{map->data(), map, {}, packs};
  auto g = parse(bytes, map->size(), dir);
  if (!g.ok()) return g.status().with_context("'" + path + "': ");
  return g;
}

StatusOr<Graph> load_onnx_bytes(const void* data, size_t size, const std::string& base_dir) {
  ModelBytes bytes{static_cast<const char*>(data), nullptr, {}};  // weights are copied out
  return parse(bytes, size, base_dir);
}

}  // namespace mserve
