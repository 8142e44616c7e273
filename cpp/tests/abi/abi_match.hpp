// Compile-time comparison of a hand-declared vendor API slice with the
// vendor's real header: the drivers declare what they call from documentation
// facts (so that cuagent builds without any vendor SDK), and these checks make
// sure those declarations pass and read exactly what the real ABI does.
// Used by the *_abi_check.cpp files, which tests/test_nvidia_abi.py compiles.
#pragma once

#include <cstddef>
#include <type_traits>

namespace cuagent::abi {

// The vendor's type for one of ours; specialised per check file for our
// structs and opaque handles. By default a type is its own counterpart.
template <class Ours>
struct Theirs {
    using type = Ours;
};

// Whether a value of our type passes exactly as the vendor's does: the same
// type after mapping, or an int standing for a C enum of int's size (C enums
// are passed as int on the Linux ABIs; we declare them as int to avoid
// copying whole enum lists). Pointers match when their pointees do, with the
// same const qualification.
template <class Real, bool = std::is_enum_v<Real>>
struct IntSizedEnum : std::false_type {};  // (sizeof only where Real is complete)
template <class Real>
struct IntSizedEnum<Real, true> : std::bool_constant<sizeof(Real) == sizeof(int)> {};

template <class Ours, class Real>
struct Matches : std::bool_constant<std::is_same_v<typename Theirs<Ours>::type, Real> ||
                                    (std::is_same_v<Ours, int> && IntSizedEnum<Real>::value)> {};
template <class Ours, class Real>
struct Matches<Ours*, Real*> : Matches<Ours, Real> {};
template <class Ours, class Real>
struct Matches<const Ours, const Real> : Matches<Ours, Real> {};

template <class Function>
struct Arity;
template <class R, class... Args>
struct Arity<R (*)(Args...)> : std::integral_constant<std::size_t, sizeof...(Args)> {};

template <class R, class... A, class RR, class... RA>
constexpr bool same_signature(R (*)(A...), RR (*)(RA...)) {
    if constexpr (sizeof...(A) != sizeof...(RA))
        return false;
    else
        return Matches<R, RR>::value && (Matches<A, RA>::value && ...);
}

}  // namespace cuagent::abi

// One function of an X-macro list against the real declaration of the same
// name: its parameter count, then every parameter and the return type.
#define CUAGENT_ABI_SAME_FUNCTION(name, ret, params)                                                  \
    static_assert(::cuagent::abi::Arity<ret(*) params>::value ==                                      \
                      ::cuagent::abi::Arity<decltype(&::name)>::value,                                \
                  #name ": our declaration has another parameter count than the real header's");     \
    static_assert(::cuagent::abi::same_signature(static_cast<ret(*) params>(nullptr),                 \
                                                 static_cast<decltype(&::name)>(nullptr)),            \
                  #name ": a parameter or the return type differs from the real header's");

// One field of one of our structs against the real struct's field of the same name.
#define CUAGENT_ABI_SAME_FIELD(ours, real, field)                                                     \
    static_assert(offsetof(ours, field) == offsetof(real, field),                                     \
                  #ours "." #field ": at another offset than in " #real);                             \
    static_assert(sizeof(ours::field) == sizeof(real::field), #ours "." #field ": another size than in " #real);

#define CUAGENT_ABI_SAME_SIZE(ours, real) \
    static_assert(sizeof(ours) == sizeof(real) && alignof(ours) == alignof(real), #ours ": another size than " #real);

#define CUAGENT_ABI_SAME_VALUE(ours, real) static_assert((ours) == (real), #ours " differs from the real " #real);
