// Rewrites a .cu or .cuh file into C++ for the emulated build (emulator.h), keeping every line where it
// was so that compiler messages point into the original file:
//   kernel<T, 4><<<grid, block, shared, stream>>>(args)
//     -> ::minidl::emu::launch(kernel<T, 4>, "kernel<T, 4>", ::minidl::emu::LaunchConfig(grid, block,
//        shared, stream))(args)
//   kernel<<<...>>>(args)   (a template kernel of this file, instantiated by the call's arguments)
//     -> ::minidl::emu::launch_deduced([&](auto... a) { kernel(a...); }, "kernel", ...)(args)
//   extern __shared__ __align__(16) unsigned char smem[];
//     -> unsigned char* smem = static_cast<unsigned char*>(::minidl::emu::dynamic_shared());
//   __shared__ float tile[16][17];
//     -> __shared__ float tile[16][17]; ::minidl::emu::poison_shared(&tile, sizeof(tile));
// and puts #include "cuda/emulator/emulate.h" first.
//   translate INPUT OUTPUT
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':'; }

// For each character: whether it is code, rather than part of a comment or a string or character literal.
std::vector<bool> code_mask(const std::string& s) {
  std::vector<bool> code(s.size(), true);
  for (size_t i = 0; i < s.size();) {
    size_t end = i;
    if (s.compare(i, 2, "//") == 0) {
      end = s.find('\n', i);
    } else if (s.compare(i, 2, "/*") == 0) {
      end = s.find("*/", i + 2);
      if (end != std::string::npos) end += 2;
    } else if (s[i] == '"' || s[i] == '\'') {
      end = i + 1;
      while (end < s.size() && s[end] != s[i] && s[end] != '\n') end += s[end] == '\\' ? 2 : 1;
      ++end;
    } else {
      ++i;
      continue;
    }
    end = std::min(end, s.size());
    for (size_t k = i; k < end; ++k) code[k] = false;
    i = end;
  }
  return code;
}

// The first occurrence of `what` at or after `from` that is code.
size_t find_code(const std::string& s, const std::vector<bool>& code, const std::string& what, size_t from) {
  for (size_t at = s.find(what, from); at != std::string::npos; at = s.find(what, at + 1))
    if (code[at]) return at;
  return std::string::npos;
}

// Where the kernel expression ending just before `end` starts: a name, possibly qualified, possibly
// followed by template arguments.
size_t callee_start(const std::string& s, size_t end) {
  size_t i = end;
  while (i > 0 && std::isspace(static_cast<unsigned char>(s[i - 1]))) --i;
  if (i > 0 && s[i - 1] == '>') {
    int depth = 0;
    do {
      --i;
      if (s[i] == '>') ++depth;
      if (s[i] == '<') --depth;
    } while (i > 0 && depth > 0);
  }
  while (i > 0 && is_name_char(s[i - 1])) --i;
  return i;
}

std::string quoted(std::string s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n' || c == '\r') c = ' ';
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// The kernels the file declares as templates: a launch naming one without template arguments is
// instantiated by its arguments, so it cannot be taken by address.
std::set<std::string> template_kernels(const std::string& s) {
  static const std::regex declaration(
      R"(template\s*<(?:[^<>]|<[^<>]*>)*>\s*__global__\s+void\s+(?:__launch_bounds__\s*\((?:[^()]|\([^()]*\))*\)\s*)?(\w+)\s*\()");
  std::set<std::string> names;
  for (auto it = std::sregex_iterator(s.begin(), s.end(), declaration); it != std::sregex_iterator(); ++it)
    names.insert((*it)[1]);
  return names;
}

std::string translate_launches(const std::string& s, const std::string& file) {
  const std::set<std::string> templates = template_kernels(s);
  const std::vector<bool> code = code_mask(s);
  std::string out;
  size_t done = 0;
  for (size_t open = find_code(s, code, "<<<", 0); open != std::string::npos;
       open = find_code(s, code, "<<<", open + 3)) {
    const size_t close = find_code(s, code, ">>>", open);
    if (close == std::string::npos) throw std::runtime_error(file + ": a <<< without its >>>");
    const size_t start = callee_start(s, open);
    if (start < done || start == open) throw std::runtime_error(file + ": no kernel name before a <<<");
    std::string callee = s.substr(start, open - start);
    size_t last = callee.find_last_not_of(" \t\r\n");
    const std::string name = callee.substr(0, last + 1);
    out += s.substr(done, start - done);
    const std::string config =
        ", " + quoted(name) + ", ::minidl::emu::LaunchConfig(" + s.substr(open + 3, close - open - 3) + "))";
    // A kernel named with its template arguments, or not a template, has an address; a template whose
    // arguments the call deduces is called through a generic lambda.
    if (name.back() == '>' || !templates.count(name))
      out += "::minidl::emu::launch(" + callee + config;
    else
      out += "::minidl::emu::launch_deduced([&](auto... minidl_emu_args) { " + name + "(minidl_emu_args...); }" +
             callee.substr(name.size()) + config;
    done = close + 3;
  }
  return out + s.substr(done);
}

std::string translate_dynamic_shared(const std::string& s) {
  static const std::regex extern_shared(
      R"(extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?([A-Za-z_][\w:]*(?:\s+[A-Za-z_][\w:]*)*?)\s+([A-Za-z_]\w*)\s*\[\s*\]\s*;)");
  return std::regex_replace(s, extern_shared, "$1* $2 = static_cast<$1*>(::minidl::emu::dynamic_shared());");
}

// Each static __shared__ declaration is followed by a call that fills the variable with NaN bytes when
// the block's first thread reaches it, so that a read before any thread's write shows in the results (as
// dynamic shared memory does). A declaration this cannot handle (several variables, several lines) is an
// error rather than a variable left unfilled.
std::string poison_static_shared(const std::string& s, const std::string& file) {
  static const std::regex declaration(
      R"(^__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?[A-Za-z_][\w:<>, ]*\s+([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)*;)");
  const std::vector<bool> code = code_mask(s);
  std::string out;
  size_t done = 0;
  for (size_t at = find_code(s, code, "__shared__", 0); at != std::string::npos;
       at = find_code(s, code, "__shared__", at + 1)) {
    const size_t line_start = s.rfind('\n', at) == std::string::npos ? 0 : s.rfind('\n', at) + 1;
    const size_t line_end = std::min(s.find('\n', at), s.size());
    const std::string line = s.substr(line_start, line_end - line_start), rest = s.substr(at, line_end - at);
    std::smatch m;
    if (!std::regex_search(rest, m, declaration)) {
      const auto number = std::count(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(at), '\n') + 1;
      throw std::runtime_error(file + ":" + std::to_string(number) +
                               ": a __shared__ declaration the emulator cannot fill (declare one variable per "
                               "declaration, on one line): " +
                               line);
    }
    const size_t after = at + static_cast<size_t>(m.length(0));
    out += s.substr(done, after - done) + " ::minidl::emu::poison_shared(&" + m[1].str() + ", sizeof(" + m[1].str() +
           "));";
    done = after;
  }
  return out + s.substr(done);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: translate INPUT.cu OUTPUT.cpp\n";
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::cerr << "translate: cannot read " << argv[1] << "\n";
    return 1;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    const std::string body =
        translate_launches(poison_static_shared(translate_dynamic_shared(buffer.str()), argv[1]), argv[1]);
    std::ofstream out(argv[2], std::ios::binary);
    out << "#include \"cuda/emulator/emulate.h\"\n#line 1 " << quoted(argv[1]) << "\n" << body;
    if (!out) {
      std::cerr << "translate: cannot write " << argv[2] << "\n";
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "translate: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
