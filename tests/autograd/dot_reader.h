// Reads back the DOT that graph_dot (autograd/graph_dot.h) writes, so tests compare a graph's structure
// (nodes, edges, labels, clusters) rather than its text. Knows graph_dot's layout only: one statement
// per line, `id [attr=..., label="..."];` for nodes, `a -> b [...];` for edges, `subgraph cluster_N {`
// with its label on the next line for modules.
#pragma once

#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace dot_test {

struct Edge {
  std::string from, to, label;
  bool dashed = false;
};

struct Graph {
  std::map<std::string, std::string> labels;  // node id -> its label, unescaped ("\n" between lines)
  std::map<std::string, std::string> shapes;  // node id -> shape
  std::vector<Edge> edges;
  std::map<std::string, std::string> cluster;  // node id -> the innermost module cluster around it ("" none)

  // The ids of the nodes whose label starts with `first_line` followed by a line break or the end.
  std::vector<std::string> find(const std::string& first_line) const {
    std::vector<std::string> out;
    for (const auto& [id, label] : labels)
      if (label == first_line || label.rfind(first_line + "\n", 0) == 0) out.push_back(id);
    return out;
  }
  std::vector<Edge> edges_from(const std::string& id) const {
    std::vector<Edge> out;
    for (const Edge& e : edges)
      if (e.from == id) out.push_back(e);
    return out;
  }
  std::vector<Edge> edges_to(const std::string& id) const {
    std::vector<Edge> out;
    for (const Edge& e : edges)
      if (e.to == id) out.push_back(e);
    return out;
  }
};

inline std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      out += s[i + 1] == 'n' ? '\n' : s[i + 1];
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

inline std::string attribute(const std::string& attrs, const std::string& key) {
  const std::regex quoted(key + R"re(="((?:[^"\\]|\\.)*)")re"), bare(key + R"re(=([A-Za-z_]+))re");
  std::smatch m;
  if (std::regex_search(attrs, m, quoted)) return unescape(m[1]);
  if (std::regex_search(attrs, m, bare)) return m[1];
  return "";
}

inline Graph read(const std::string& dot) {
  Graph g;
  const std::regex node(R"re(^\s*(\w+) \[(.*)\];$)re"), edge(R"re(^\s*(\w+) -> (\w+)(?: \[(.*)\])?;$)re"),
      member(R"re(^\s*(\w+);$)re"), open(R"re(^\s*subgraph cluster_\d+ \{$)re"),
      label(R"re(^\s*label="((?:[^"\\]|\\.)*)")re");
  std::vector<std::string> clusters;
  bool want_label = false;
  std::istringstream in(dot);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (want_label && std::regex_search(line, m, label)) {
      clusters.back() = unescape(m[1]);
      want_label = false;
    } else if (std::regex_match(line, m, open)) {
      clusters.push_back("");
      want_label = true;
    } else if (line.find_first_not_of(' ') != std::string::npos && line[line.find_first_not_of(' ')] == '}') {
      if (!clusters.empty()) clusters.pop_back();
    } else if (std::regex_match(line, m, edge)) {
      const std::string attrs = m[3];
      g.edges.push_back({m[1], m[2], attribute(attrs, "label"), attrs.find("style=dashed") != std::string::npos});
    } else if (std::regex_match(line, m, node) && m[1] != "graph" && m[1] != "node" && m[1] != "edge") {
      g.labels[m[1]] = attribute(m[2], "label");
      g.shapes[m[1]] = attribute(m[2], "shape");
    } else if (std::regex_match(line, m, member)) {
      g.cluster[m[1]] = clusters.empty() ? "" : clusters.back();
    }
  }
  return g;
}

}  // namespace dot_test
