# Installs the minidl build at MINIDL_BUILD into WORK/prefix, then configures, builds and runs the
# consumer project at CONSUMER against it with find_package(minidl). Run by ctest (package.find_package).
file(REMOVE_RECURSE "${WORK}")

function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

step("install" ${CMAKE_COMMAND} --install "${MINIDL_BUILD}" --prefix "${WORK}/prefix")
step("configure the consumer" ${CMAKE_COMMAND} -S "${CONSUMER}" -B "${WORK}/consumer" -G "${GENERATOR}"
     "-DCMAKE_PREFIX_PATH=${WORK}/prefix" -DCMAKE_BUILD_TYPE=Release)
step("build the consumer" ${CMAKE_COMMAND} --build "${WORK}/consumer")
step("run the consumer" "${WORK}/consumer/consumer")
if(NOT step_output MATCHES "grad 6")
  message(FATAL_ERROR "the consumer printed an unexpected result:\n${step_output}")
endif()
message(STATUS "consumer output: ${step_output}")
