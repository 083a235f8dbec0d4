#include "dnn_gating/io/pytorch_state_dict.h"

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <variant>

#include "dnn_gating/io/atomic_file.h"
#include "dnn_gating/layers/gated_layer.h"
#include "io/bounded_read_adapter.h"
#include "io/zip_check.h"

namespace dnn_gating::train {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

// ---- the storage types a state dict refers to ----

struct StorageType {
  const char* name;  // torch.<name>
  torch::ScalarType dtype;
};

constexpr StorageType kStorageTypes[] = {
    {"FloatStorage", torch::kFloat}, {"DoubleStorage", torch::kDouble},
    {"HalfStorage", torch::kHalf},   {"BFloat16Storage", torch::kBFloat16},
    {"LongStorage", torch::kLong},   {"IntStorage", torch::kInt},
    {"ShortStorage", torch::kShort}, {"CharStorage", torch::kChar},
    {"ByteStorage", torch::kByte},   {"BoolStorage", torch::kBool},
};

std::optional<torch::ScalarType> storage_dtype(const std::string& name) {
  for (const auto& t : kStorageTypes) {
    if (name == t.name) return t.dtype;
  }
  return std::nullopt;
}

const char* storage_name(torch::ScalarType dtype) {
  for (const auto& t : kStorageTypes) {
    if (t.dtype == dtype) return t.name;
  }
  throw std::runtime_error(std::string("no PyTorch storage type for ") + c10::toString(dtype));
}

// ---- values on the unpickler's stack ----

struct Value;
using ValuePtr = std::shared_ptr<Value>;

enum class Global { kOrderedDict, kRebuildTensor, kStorage };

struct Value {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kTensor,
    kStorage,
    kMark
  };
  Kind kind = Kind::kNone;
  int64_t integer = 0;  // kBool, kInt
  double real = 0;
  std::string text;                                    // kString; kStorage: its record key
  std::vector<ValuePtr> items;                         // kTuple, kList
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // kDict, in order
  Global global = Global::kOrderedDict;
  torch::ScalarType dtype = torch::kFloat;  // kGlobal storage type, kStorage
  int64_t numel = 0;                        // kStorage: elements
  torch::Tensor tensor;
};

ValuePtr make(Value::Kind kind) {
  auto v = std::make_shared<Value>();
  v->kind = kind;
  return v;
}

// Reads the pickle of a state dict, executing nothing: the only callables are
// OrderedDict() and _rebuild_tensor_v2, applied by this code itself.
class Unpickler {
 public:
  Unpickler(
      const std::string& pickle, const std::string& path,
      std::function<torch::Tensor(const std::string& key, torch::ScalarType, int64_t)> storage)
      : data_(pickle), path_(path), load_storage_(std::move(storage)) {}

  ValuePtr run() {
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80:  // PROTO
          byte();
          break;
        case '.':  // STOP
          if (stack_.size() != 1)
            error("the pickle ends with " + std::to_string(stack_.size()) + " values");
          return stack_.back();
        case '}':  // EMPTY_DICT
          push(make(Value::Kind::kDict));
          break;
        case ']':  // EMPTY_LIST
          push(make(Value::Kind::kList));
          break;
        case ')':  // EMPTY_TUPLE
          push(make(Value::Kind::kTuple));
          break;
        case '(':  // MARK
          push(make(Value::Kind::kMark));
          break;
        case 'N':  // NONE
          push(make(Value::Kind::kNone));
          break;
        case 0x88:    // NEWTRUE
        case 0x89: {  // NEWFALSE
          auto v = make(Value::Kind::kBool);
          v->integer = op == 0x88;
          push(v);
          break;
        }
        case 'K':  // BININT1
          push_int(byte());
          break;
        case 'M':  // BININT2
          push_int(unsigned_le(2));
          break;
        case 'J':  // BININT
          push_int(static_cast<int32_t>(unsigned_le(4)));
          break;
        case 0x8a: {  // LONG1
          const size_t n = byte();
          if (n > 8) error("LONG1 of " + std::to_string(n) + " bytes");
          uint64_t raw = 0;
          for (size_t i = 0; i < n; ++i) raw |= uint64_t{byte()} << (8 * i);
          if (n > 0 && n < 8 && (raw >> (8 * n - 1)) & 1) raw |= ~uint64_t{0} << (8 * n);
          push_int(static_cast<int64_t>(raw));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          uint64_t raw = 0;
          for (int i = 0; i < 8; ++i) raw = (raw << 8) | byte();
          auto v = make(Value::Kind::kFloat);
          std::memcpy(&v->real, &raw, sizeof raw);
          push(v);
          break;
        }
        case 'X': {  // BINUNICODE
          const size_t n = unsigned_le(4);
          auto v = make(Value::Kind::kString);
          v->text = bytes(n);
          push(v);
          break;
        }
        case 'q':  // BINPUT
          memo(byte());
          break;
        case 'r':  // LONG_BINPUT
          memo(unsigned_le(4));
          break;
        case 'h':  // BINGET
          push(recall(byte()));
          break;
        case 'j':  // LONG_BINGET
          push(recall(unsigned_le(4)));
          break;
        case 'c':  // GLOBAL
          push(global());
          break;
        case 't': {  // TUPLE
          auto v = make(Value::Kind::kTuple);
          v->items = pop_to_mark();
          push(v);
          break;
        }
        case 0x85:    // TUPLE1
        case 0x86:    // TUPLE2
        case 0x87: {  // TUPLE3
          auto v = make(Value::Kind::kTuple);
          v->items.resize(op - 0x84);
          for (size_t i = v->items.size(); i-- > 0;) v->items[i] = pop();
          push(v);
          break;
        }
        case 'a': {  // APPEND
          ValuePtr item = pop();
          list_on_top()->items.push_back(item);
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_to_mark();
          auto list = list_on_top();
          list->items.insert(list->items.end(), items.begin(), items.end());
          break;
        }
        case 's': {  // SETITEM
          ValuePtr value = pop();
          ValuePtr key = pop();
          dict_on_top()->entries.emplace_back(key, value);
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_to_mark();
          if (items.size() % 2 != 0) error("SETITEMS with an odd number of values");
          auto dict = dict_on_top();
          for (size_t i = 0; i < items.size(); i += 2)
            dict->entries.emplace_back(items[i], items[i + 1]);
          break;
        }
        case 'Q': {  // BINPERSID
          push(persistent(pop()));
          break;
        }
        case 'R': {  // REDUCE
          ValuePtr args = pop();
          ValuePtr callable = pop();
          push(reduce(callable, args));
          break;
        }
        case 'b': {  // BUILD: an OrderedDict's attributes (_metadata): kept out
          ValuePtr state = pop();
          if (top()->kind != Value::Kind::kDict)
            error("BUILD on something other than an OrderedDict");
          break;
        }
        default:
          error(fmt::format(
              "pickle opcode 0x{:02x} ('{}') at byte {}, which state dict files do not use", op,
              std::isprint(op) ? static_cast<char>(op) : '?', position_ - 1));
      }
    }
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail(path_, "not a PyTorch state dict: " + what);
  }

  uint8_t byte() {
    if (position_ >= data_.size()) error("the pickle ends early");
    return static_cast<uint8_t>(data_[position_++]);
  }
  uint64_t unsigned_le(int width) {
    uint64_t v = 0;
    for (int i = 0; i < width; ++i) v |= uint64_t{byte()} << (8 * i);
    return v;
  }
  std::string bytes(size_t n) {
    if (n > data_.size() - position_) error("a string runs past the end of the pickle");
    std::string out = data_.substr(position_, n);
    position_ += n;
    return out;
  }
  std::string line() {
    const size_t end = data_.find('\n', position_);
    if (end == std::string::npos || end - position_ > 256) error("a broken GLOBAL");
    std::string out = data_.substr(position_, end - position_);
    position_ = end + 1;
    return out;
  }

  void push(ValuePtr v) { stack_.push_back(std::move(v)); }
  void push_int(int64_t i) {
    auto v = make(Value::Kind::kInt);
    v->integer = i;
    push(v);
  }
  ValuePtr top() const {
    if (stack_.empty() || stack_.back()->kind == Value::Kind::kMark) error("an empty stack");
    return stack_.back();
  }
  ValuePtr pop() {
    ValuePtr v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<ValuePtr> pop_to_mark() {
    size_t mark = stack_.size();
    while (mark > 0 && stack_[mark - 1]->kind != Value::Kind::kMark) --mark;
    if (mark == 0) error("no MARK to pop to");
    std::vector<ValuePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark - 1);
    return items;
  }
  ValuePtr list_on_top() const {
    ValuePtr v = top();
    if (v->kind != Value::Kind::kList) error("APPEND to something other than a list");
    return v;
  }
  ValuePtr dict_on_top() const {
    ValuePtr v = top();
    if (v->kind != Value::Kind::kDict) error("SETITEM on something other than a dict");
    return v;
  }
  void memo(uint64_t index) {
    if (index > data_.size()) error("a memo index beyond the pickle's size");
    memo_[index] = top();
  }
  ValuePtr recall(uint64_t index) const {
    const auto it = memo_.find(index);
    if (it == memo_.end()) error("a memo entry that was never stored");
    return it->second;
  }

  ValuePtr global() {
    const std::string module = line();
    const std::string name = line();
    auto v = make(Value::Kind::kGlobal);
    if (module == "collections" && name == "OrderedDict") {
      v->global = Global::kOrderedDict;
    } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
      v->global = Global::kRebuildTensor;
    } else if (module == "torch" && storage_dtype(name)) {
      v->global = Global::kStorage;
      v->dtype = *storage_dtype(name);
    } else {
      error("global " + module + "." + name + ", which state dict files do not use");
    }
    return v;
  }

  // ('storage', torch.<Type>Storage, key, location, numel)
  ValuePtr persistent(const ValuePtr& id) {
    const auto& t = id->items;
    if (id->kind != Value::Kind::kTuple || t.size() != 5 || t[0]->kind != Value::Kind::kString ||
        t[0]->text != "storage" || t[1]->kind != Value::Kind::kGlobal ||
        t[1]->global != Global::kStorage || t[2]->kind != Value::Kind::kString ||
        t[4]->kind != Value::Kind::kInt || t[4]->integer < 0) {
      error("a persistent id that is not a storage");
    }
    auto v = make(Value::Kind::kStorage);
    v->text = t[2]->text;
    v->dtype = t[1]->dtype;
    v->numel = t[4]->integer;
    return v;
  }

  ValuePtr reduce(const ValuePtr& callable, const ValuePtr& args) {
    if (callable->kind != Value::Kind::kGlobal || args->kind != Value::Kind::kTuple) {
      error("REDUCE of something that is not a known global");
    }
    if (callable->global == Global::kOrderedDict) {
      if (!args->items.empty()) error("OrderedDict with arguments");
      return make(Value::Kind::kDict);
    }
    if (callable->global != Global::kRebuildTensor) error("REDUCE of a storage type");
    return rebuild_tensor(args->items);
  }

  std::vector<int64_t> ints(const ValuePtr& tuple, const char* what) const {
    if (tuple->kind != Value::Kind::kTuple)
      error(std::string("tensor ") + what + " is not a tuple");
    std::vector<int64_t> out;
    for (const auto& item : tuple->items) {
      if (item->kind != Value::Kind::kInt || item->integer < 0) {
        error(std::string("tensor ") + what + " holds a negative or non-integer value");
      }
      out.push_back(item->integer);
    }
    return out;
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[,
  // metadata])
  ValuePtr rebuild_tensor(const std::vector<ValuePtr>& a) {
    if (a.size() < 6 || a.size() > 7 || a[0]->kind != Value::Kind::kStorage ||
        a[1]->kind != Value::Kind::kInt || a[1]->integer < 0) {
      error("_rebuild_tensor_v2 with unexpected arguments");
    }
    const std::vector<int64_t> size = ints(a[2], "size");
    const std::vector<int64_t> stride = ints(a[3], "stride");
    if (size.size() != stride.size()) error("a tensor whose size and stride differ in length");
    // The last element the view reaches must lie inside its storage.
    const int64_t offset = a[1]->integer;
    const int64_t numel = a[0]->numel;
    // In 128 bits: the claims are the file's and may be anything.
    bool empty = false;
    __int128 extent = offset, elements = 1;
    for (size_t d = 0; d < size.size(); ++d) {
      if (size[d] == 0) empty = true;
      extent += static_cast<__int128>(size[d] > 0 ? size[d] - 1 : 0) * stride[d];
      elements = std::min<__int128>(elements * size[d], __int128{1} << 100);
    }
    if (!empty && (extent >= numel || elements > numel)) {
      error(fmt::format("a tensor of {} elements that does not fit its storage of {}",
                        c10::multiply_integers(size), numel));
    }
    const torch::Tensor storage = load_storage_(a[0]->text, a[0]->dtype, numel);
    auto v = make(Value::Kind::kTensor);
    v->tensor =
        empty ? torch::empty(size, storage.options()) : storage.as_strided(size, stride, offset);
    return v;
  }

  const std::string& data_;
  const std::string& path_;
  std::function<torch::Tensor(const std::string&, torch::ScalarType, int64_t)> load_storage_;
  size_t position_ = 0;
  std::vector<ValuePtr> stack_;
  std::map<uint64_t, ValuePtr> memo_;
};

// ---- writing ----

class Pickler {
 public:
  void op(uint8_t code) { out_.push_back(static_cast<char>(code)); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) op(static_cast<uint8_t>(v >> (8 * i)));
  }
  void string(const std::string& s) {
    op('X');
    u32(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      op('K');
      op(static_cast<uint8_t>(v));
    } else if (v >= 0 && v < 65536) {
      op('M');
      op(static_cast<uint8_t>(v));
      op(static_cast<uint8_t>(v >> 8));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      u32(static_cast<uint32_t>(v));
    } else {
      op(0x8a);
      op(8);
      for (int i = 0; i < 8; ++i) op(static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i)));
    }
  }
  void global(const std::string& module, const std::string& name) {
    op('c');
    out_ += module + "\n" + name + "\n";
  }
  void ordered_dict() {
    global("collections", "OrderedDict");
    op(')');
    op('R');
  }
  void ints(const std::vector<int64_t>& values) {
    op('(');
    for (int64_t v : values) integer(v);
    op('t');
  }
  std::string& text() { return out_; }

 private:
  std::string out_;
};

}  // namespace

bool is_pytorch_state_dict(const std::vector<char>& bytes) {
  // A zip whose pickle opens with OrderedDict (TorchScript's pickles, ours
  // included, open with restore_type_tag or a plain dict).
  static const std::string kZip = "PK\x03\x04";
  static const std::string kStart = std::string("\x80\x02", 2) + "ccollections\nOrderedDict\n";
  return bytes.size() > 4 && std::equal(kZip.begin(), kZip.end(), bytes.begin()) &&
         std::search(bytes.begin(), bytes.end(), kStart.begin(), kStart.end()) != bytes.end();
}

std::map<std::string, torch::Tensor> parse_pytorch_state_dict(const std::vector<char>& bytes,
                                                              const std::string& path) {
  check_zip_records(bytes, path);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  std::string pickle;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(
        std::make_shared<BoundedReadAdapter>(bytes));
    if (!reader->hasRecord("data.pkl"))
      fail(path, "not a PyTorch state dict: no data.pkl in the archive");
    auto [data, size] = reader->getRecord("data.pkl");
    pickle.assign(static_cast<const char*>(data.get()), size);
  } catch (const c10::Error&) {
    fail(path, "not a readable PyTorch archive (damaged or truncated zip)");
  }
  std::map<std::string, torch::Tensor> storages;
  auto load_storage = [&](const std::string& key, torch::ScalarType dtype,
                          int64_t numel) -> torch::Tensor {
    const std::string record = "data/" + key;
    auto it = storages.find(key);
    if (it != storages.end()) {
      if (it->second.scalar_type() != dtype || it->second.numel() != numel) {
        fail(path, "storage " + key + " is referred to with two types or sizes");
      }
      return it->second;
    }
    if (key.empty() || key.find('/') != std::string::npos || !reader->hasRecord(record)) {
      fail(path, "not a PyTorch state dict: storage " + key + " has no record " + record);
    }
    const size_t item = c10::elementSize(dtype);
    const size_t need = static_cast<size_t>(numel) * item;
    if (numel != 0 && need / item != static_cast<size_t>(numel))
      fail(path, "a storage of impossible size");
    size_t have = 0;
    at::DataPtr data;
    try {
      std::tie(data, have) = reader->getRecord(record);
    } catch (const c10::Error&) {
      fail(path, "not a readable PyTorch archive: record " + record + " is damaged");
    }
    if (have < need) {
      fail(path, fmt::format("storage {} holds {} bytes, fewer than its {} {} elements need", key,
                             have, numel, c10::toString(dtype)));
    }
    torch::Tensor storage = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
    if (need > 0) std::memcpy(storage.data_ptr(), data.get(), need);
    storages.emplace(key, storage);
    return storage;
  };
  const ValuePtr root = Unpickler(pickle, path, load_storage).run();
  if (root->kind != Value::Kind::kDict)
    fail(path, "not a PyTorch state dict: the pickle holds no dict");
  std::map<std::string, torch::Tensor> out;
  for (const auto& [key, value] : root->entries) {
    if (key->kind != Value::Kind::kString || value->kind != Value::Kind::kTensor) {
      fail(path, "not a PyTorch state dict: an entry that is not name -> tensor");
    }
    std::string name = key->text;
    if (name.rfind("module.", 0) == 0) name = name.substr(7);  // saved under DataParallel
    // Views of one storage become tensors of their own.
    out[name] = value->tensor.contiguous().clone();
  }
  return out;
}

std::map<std::string, torch::Tensor> read_pytorch_state_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) fail(path, "cannot open the file (no such file?)");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  return parse_pytorch_state_dict(bytes, path);
}

std::vector<char> pytorch_state_dict_bytes(torch::nn::Module& model) {
  // The state dict in the order Python's would list it: per module, its
  // parameters then its buffers, modules in registration order.
  std::vector<std::pair<std::string, torch::Tensor>> entries;
  std::vector<std::pair<std::string, int>> versions;
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    const bool batch_norm =
        dynamic_cast<torch::nn::BatchNorm2dImpl*>(item.value().get()) != nullptr;
    versions.emplace_back(item.key(), batch_norm ? 2 : 1);
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false)) {
      entries.emplace_back(prefix + p.key(), p.value());
    }
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false)) {
      entries.emplace_back(prefix + b.key(), b.value());
    }
  }

  Pickler p;
  p.op(0x80);
  p.op(2);
  p.ordered_dict();
  p.op('(');
  std::vector<torch::Tensor> storages;
  for (const auto& [name, tensor] : entries) {
    const torch::Tensor data = tensor.detach().cpu().contiguous();
    p.string(name);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.op('(');
    p.op('(');  // the persistent id
    p.string("storage");
    p.global("torch", storage_name(data.scalar_type()));
    p.string(std::to_string(storages.size()));
    p.string("cpu");
    p.integer(data.numel());
    p.op('t');
    p.op('Q');
    p.integer(0);
    p.ints(data.sizes().vec());
    p.ints(data.strides().vec());
    p.op(0x89);        // requires_grad = False
    p.ordered_dict();  // backward hooks
    p.op('t');
    p.op('R');
    storages.push_back(data);
  }
  p.op('u');
  // The modules' versions, as Module.state_dict() records them.
  p.op('}');
  p.string("_metadata");
  p.ordered_dict();
  p.op('(');
  for (const auto& [name, version] : versions) {
    p.string(name);
    p.op('}');
    p.string("version");
    p.integer(version);
    p.op('s');
  }
  p.op('u');
  p.op('s');
  p.op('b');
  p.op('.');

  std::vector<char> out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) {
    out.insert(out.end(), static_cast<const char*>(data), static_cast<const char*>(data) + size);
    return size;
  });
  writer.writeRecord("data.pkl", p.text().data(), p.text().size());
  writer.writeRecord("byteorder", "little", 6);
  for (size_t i = 0; i < storages.size(); ++i) {
    const torch::Tensor& s = storages[i];
    writer.writeRecord("data/" + std::to_string(i), s.data_ptr(), s.numel() * s.element_size());
  }
  writer.writeEndOfFile();
  return out;
}

void write_pytorch_state_dict(const std::string& path, torch::nn::Module& model) {
  const std::vector<char> bytes = pytorch_state_dict_bytes(model);
  write_file_atomically(path, std::string_view(bytes.data(), bytes.size()), "PyTorch state dict");
}

}  // namespace dnn_gating::train
